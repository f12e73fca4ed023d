import pytest
import torch

from cnnviz.interpret import class_index, target_indices, target_scores
from cnnviz.zoo.core import CnnvizError


def test_class_index_accepts_ints_digits_and_names(tiny):
    assert class_index(tiny, 2) == 2
    assert class_index(tiny, "1") == 1
    assert class_index(tiny, "BEE") == 1


def test_out_of_range_and_unknown_names_are_clear(tiny):
    with pytest.raises(CnnvizError, match=r"out of range.*0\.\.2"):
        class_index(tiny, 3)
    with pytest.raises(CnnvizError, match=r"out of range"):
        class_index(tiny, -1)
    with pytest.raises(CnnvizError, match="did you mean 'bee'"):
        class_index(tiny, "beee")


def test_target_indices_per_image_and_predicted(tiny):
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    assert target_indices(tiny, None, logits).tolist() == [1, 0]
    assert target_indices(tiny, "cow", logits).tolist() == [2, 2]
    assert target_indices(tiny, [0, "bee"], logits).tolist() == [0, 1]
    with pytest.raises(CnnvizError, match="3 targets for 2 images"):
        target_indices(tiny, [0, 1, 2], logits)


def test_target_scores_gather_or_call(tiny):
    output = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    assert target_scores(tiny, [2, 1], output).tolist() == [1.0, 0.0]
    assert target_scores(tiny, lambda o: o.softmax(1)[:, 0], output).shape == (2,)
    with pytest.raises(CnnvizError, match="one score per image"):
        target_scores(tiny, lambda o: o.sum(), output)
