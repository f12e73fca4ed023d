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


def test_part_of_a_class_name_names_the_one_class_that_contains_it():
    from cnnviz import zoo
    from tests.conftest import TinyCNN

    cats = zoo.wrap(TinyCNN(), input_size=16, classes=["tiger cat", "Egyptian cat", "cat"], name="cats")
    assert class_index(cats, "egyptian") == 1 and class_index(cats, "TIGER") == 0
    assert class_index(cats, "Cat") == 2  # a whole name wins over the names that contain it
    with pytest.raises(CnnvizError, match=r"'at' is part of 3 class names of cats: 'tiger cat', 'Egyptian cat', "
                                          r"'cat'; give more of the name"):
        class_index(cats, "at")
    with pytest.raises(CnnvizError, match="no class named 'dog'"):
        class_index(cats, "dog")
