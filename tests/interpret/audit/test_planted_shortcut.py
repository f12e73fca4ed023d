"""The issue's acceptance test: a shortcut planted in training is real, and the audit's top flag finds it.

tutorial_cnn is trained with ``cnnviz train`` on 3,000 Fashion-MNIST images where 90% of the shirts carry a
4-pixel white square near the top-left corner. The audit folder (PNGs, 100 test images per class) has 200 shirts,
half of them marked, and is audited by ``interpret.audit`` with its default method. The control is the same recipe without the mark.
bench/audit_shortcut.py runs other classes, places, sizes and methods.
"""

import pytest

from cnnviz.interpret.audit import DEFAULT_METHOD
from cnnviz.interpret.audit.flags import DEFAULT_THRESHOLD
from cnnviz.zoo.data import Mark
from tests.conftest import needs_fashion
from tests.interpret.audit import planted

SHIRT, MARK = 6, Mark(x=0.15, y=0.15, size=4)


@needs_fashion
@pytest.mark.slow
def test_a_planted_shortcut_is_flagged_first_and_its_control_is_not(cli, tmp_path):
    def train(*args):
        assert cli(*args).code == 0

    marked_model = planted.train(train, planted.write_training_folder(
        tmp_path / "fashion-marked", class_index=SHIRT, mark=MARK), tmp_path / "marked")
    data, marked = planted.audit_set(SHIRT, MARK)

    effect = planted.shortcut_effect(marked_model, data, SHIRT, MARK)
    assert effect["predicted_marked"] > effect["predicted_clean"] + 0.5  # the mark alone makes other clothes shirts
    assert effect["p_marked"] > 5 * effect["p_clean"]

    marked_ids = planted.write_audit_folder(tmp_path / "audit", data, marked)
    found = planted.run_audit(marked_model, tmp_path / "audit", tmp_path / "audit-run", DEFAULT_METHOD,
                              marked_ids, MARK, concepts=3)
    top = found.flags[0]
    assert top["class"] == "Shirt" and top["score"] > DEFAULT_THRESHOLD
    assert found.purity >= 0.9 and found.recall >= 0.8 and found.on_mark

    clean_model = planted.train(train, planted.write_training_folder(
        tmp_path / "fashion-clean", class_index=SHIRT, mark=None), tmp_path / "clean")
    clean_data, unmarked = planted.audit_set(SHIRT, None)
    planted.write_audit_folder(tmp_path / "clean-audit", clean_data, unmarked)
    control = planted.run_audit(clean_model, tmp_path / "clean-audit", tmp_path / "clean-run", DEFAULT_METHOD,
                                set(), None)
    assert control.top_score < DEFAULT_THRESHOLD
    assert top["score"] - control.top_score > 0.2  # the gap; the bench reports it per setting


def test_plant_marks_the_chosen_share_of_one_class_and_nothing_else():
    import torch

    from cnnviz.zoo.data import Frame, TensorData, plant, stamp

    data = TensorData(torch.randint(0, 200, (40, 1, 10, 10), dtype=torch.uint8), torch.arange(40) % 4)
    before = data.images.clone()
    planted_data, marked = plant(data, class_index=2, fraction=0.6, mark=MARK, seed=3)
    assert torch.equal(data.images, before)  # the input is not changed
    assert int(marked.sum()) == 6 and bool((data.labels[marked] == 2).all())
    assert torch.equal(planted_data.images[~marked], before[~marked])
    x0, y0, x1, y1 = MARK.box(10, 10)
    assert bool((planted_data.images[marked][..., y0:y1, x0:x1] == 255).all())
    framed = stamp(torch.zeros(2, 3, 6, 8), Frame(width=2, value=0.5))
    assert float(framed.sum()) == 0.5 * 3 * 2 * (6 * 8 - 2 * 4)  # the 2 x 4 centre stays untouched
    assert planted.holds_mark([0.0, 0.0, 0.2, 0.3], MARK, 28, 14)
    assert not planted.holds_mark([0.5, 0.5, 0.8, 0.8], MARK, 28, 14)
    assert planted.holds_mark([0.0, 0.4, 0.1, 0.6], Frame(), 28, 14)
    assert not planted.holds_mark([0.3, 0.3, 0.6, 0.6], Frame(), 28, 14)
