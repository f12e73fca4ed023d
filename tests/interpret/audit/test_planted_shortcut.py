"""The issue's acceptance test: a shortcut planted in training is real, and the audit's top flag finds it.

tutorial_cnn is trained with ``cnnviz train`` on 3,000 Fashion-MNIST images where 90% of the shirts carry a
4-pixel white square near the top-left corner; the audit set has half of its shirts marked. The control is
the same recipe without the mark. bench/audit_shortcut.py runs other classes, places and sizes.
"""

import pytest

from cnnviz.interpret.audit.flags import DEFAULT_THRESHOLD
from cnnviz.zoo.data.shortcuts import Mark
from tests.conftest import needs_fashion
from tests.interpret.audit import planted

SHIRT, MARK, METHOD = 6, Mark(x=0.15, y=0.15, size=4), "captum:InputXGradient"


@needs_fashion
@pytest.mark.slow
def test_a_planted_shortcut_is_flagged_first_and_its_control_is_not(cli, tmp_path):
    train = lambda *args: cli(*args).code == 0 or pytest.fail(f"cnnviz train failed")  # noqa: E731
    marked_model = planted.train(train, planted.write_training_folder(
        tmp_path / "fashion-marked", class_index=SHIRT, mark=MARK), tmp_path / "marked")
    data, marked = planted.audit_set(SHIRT, MARK)

    effect = planted.shortcut_effect(marked_model, data, SHIRT, MARK)
    assert effect["predicted_marked"] > effect["predicted_clean"] + 0.5  # the mark alone makes other clothes shirts
    assert effect["p_marked"] > 5 * effect["p_clean"]

    found = planted.audit(planted.explanation_maps(marked_model, data, METHOD), data.labels.numpy(), marked, MARK)
    top = found.flags[0]
    assert top.cls == "Shirt" and top.score > DEFAULT_THRESHOLD
    assert found.purity >= 0.9 and found.recall >= 0.8 and found.on_mark

    clean_model = planted.train(train, planted.write_training_folder(
        tmp_path / "fashion-clean", class_index=SHIRT, mark=None), tmp_path / "clean")
    clean_data, unmarked = planted.audit_set(SHIRT, None)
    control = planted.audit(planted.explanation_maps(clean_model, clean_data, METHOD), clean_data.labels.numpy(),
                            unmarked, None)
    assert control.top_score < DEFAULT_THRESHOLD
    assert top.score - control.top_score > 0.2  # the gap; the bench reports it per setting
