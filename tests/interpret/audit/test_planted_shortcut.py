"""The issue's acceptance test: a shortcut planted in training is real, and the audit's top flag finds it.

tutorial_cnn is trained with ``cnnviz train`` on 3,000 Fashion-MNIST images where 90% of the shirts carry a
4-pixel white square near the top-left corner. The audit folder (PNGs, 100 test images per class) has 200 shirts,
half of them marked, and is audited by ``interpret.audit``. The control is the same recipe without the mark.
bench/audit_shortcut.py runs other classes, places, sizes and methods.
"""

import pytest

from cnnviz.interpret.audit.flags import DEFAULT_THRESHOLD
from cnnviz.zoo.data import Mark
from tests.conftest import needs_fashion
from tests.interpret.audit import planted

SHIRT, MARK = 6, Mark(x=0.15, y=0.15, size=4)
METHOD = "captum:InputXGradient"  # the method recommended for audits (bench/audit_shortcut.py)


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
    found = planted.run_audit(marked_model, tmp_path / "audit", tmp_path / "audit-run", METHOD,
                              marked_ids, MARK, concepts=3)
    top = found.flags[0]
    assert top["class"] == "Shirt" and top["score"] > DEFAULT_THRESHOLD
    assert found.purity >= 0.9 and found.recall >= 0.8 and found.on_mark

    clean_model = planted.train(train, planted.write_training_folder(
        tmp_path / "fashion-clean", class_index=SHIRT, mark=None), tmp_path / "clean")
    clean_data, unmarked = planted.audit_set(SHIRT, None)
    planted.write_audit_folder(tmp_path / "clean-audit", clean_data, unmarked)
    control = planted.run_audit(clean_model, tmp_path / "clean-audit", tmp_path / "clean-run", METHOD,
                                set(), None)
    assert control.top_score < DEFAULT_THRESHOLD
    assert top["score"] - control.top_score > 0.2  # the gap; the bench reports it per setting
