"""Planted shortcuts across classes, places, sizes and explanation methods: does the audit's top flag find them?

For each setting (a class, a mark's place and size) tutorial_cnn is trained with ``cnnviz train`` on 3,000
Fashion-MNIST images where 90% of the class carry the mark (tests/interpret/audit/planted.py, the recipe of
the acceptance test). The audit set is 100 test images per class, 200 of the marked class, half of those
marked, written as a folder of PNGs and audited by ``interpret.audit`` (every candidate flag kept). For each method it reports the top flag's class, score, purity and recall of the marked images, whether
its relevance box holds the mark, and the control: the highest flag score of a model trained on the same recipe
without any mark, audited on the unmarked set (one control model per seed). Also: how much the mark alone moves
the other classes' images to the class (shortcut effect: share predicted as the class, clean -> marked).

Usage:
    python bench/audit_shortcut.py [--seeds 0 1] [--methods captum:InputXGradient lrp gradcam gradient]
        [--map-side 14]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnviz.cli.main import main as cnnviz_main  # noqa: E402
from cnnviz.interpret.audit.flags import DEFAULT_THRESHOLD  # noqa: E402
from cnnviz.zoo.data import FASHION_MNIST_CLASSES  # noqa: E402
from cnnviz.zoo.data import Frame, Mark  # noqa: E402
from tests.interpret.audit import planted  # noqa: E402

SETTINGS = {  # name -> (class, mark)
    "Shirt, top-left 4px": (6, Mark(x=0.15, y=0.15, size=4)),
    "Bag, bottom-right 3px": (8, Mark(x=0.88, y=0.88, size=3)),
    "Pullover, right edge 3px": (2, Mark(x=0.92, y=0.5, size=3)),
    "Sneaker, top centre 2px": (7, Mark(x=0.5, y=0.08, size=2)),
    "Coat, on the object 3px": (4, Mark(x=0.5, y=0.55, size=3, value=0.0)),  # a black square on the garment
    "Shirt, 1px frame": (6, Frame(width=1)),  # a border: not small, spread thin
}


def run_cli(*args: object) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # keep the table alone on stdout
        code = cnnviz_main([str(a) for a in args])
    if code != 0:
        raise SystemExit(f"cnnviz {' '.join(map(str, args))} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["captum:InputXGradient", "lrp", "gradcam", "gradient"])
    parser.add_argument("--map-side", type=int, default=planted.MAP_SIDE)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"# audit_shortcut, {datetime.date.today()}, cpu ({torch.get_num_threads()} threads), map side "
          f"{args.map_side}, flag threshold {DEFAULT_THRESHOLD}")
    print("| setting | seed | shortcut effect | method | top flag | score | purity | recall | on mark | "
          "control top | gap |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed in args.seeds:
            clean = planted.train(run_cli, planted.write_training_folder(
                root / f"fashion-clean-{seed}", class_index=0, mark=None, seed=seed), root / f"clean-{seed}", seed)
            clean_data, unmarked = planted.audit_set(0, None, seed=seed)
            planted.write_audit_folder(root / f"clean-audit-{seed}", clean_data, unmarked)
            control = {m: planted.run_audit(clean, root / f"clean-audit-{seed}", root / f"clean-run-{seed}-{j}", m,
                                            set(), None, args.map_side).top_score
                       for j, m in enumerate(args.methods)}
            for i, name in enumerate(args.settings):
                cls, mark = SETTINGS[name]
                model = planted.train(run_cli, planted.write_training_folder(
                    root / f"fashion-{i}-{seed}", class_index=cls, mark=mark, seed=seed), root / f"run-{i}-{seed}",
                    seed)
                data, marked = planted.audit_set(cls, mark, seed=seed)
                effect = planted.shortcut_effect(model, data, cls, mark)
                marked_ids = planted.write_audit_folder(root / f"audit-{i}-{seed}", data, marked)
                for j, method in enumerate(args.methods):
                    found = planted.run_audit(model, root / f"audit-{i}-{seed}", root / f"run-{i}-{seed}-{j}",
                                              method, marked_ids, mark, args.map_side)
                    top = found.flags[0] if found.flags else None
                    label = f"{top['class']} ({top['items']})" if top else "-"
                    right = top is not None and top["class"] == FASHION_MNIST_CLASSES[cls]
                    print(f"| {name} | {seed} | {effect['predicted_clean']:.2f} -> {effect['predicted_marked']:.2f} "
                          f"| {method} | {label}{'' if right else ' (wrong class)'} | {found.top_score:.3f} "
                          f"| {found.purity:.2f} | {found.recall:.2f} | {'yes' if found.on_mark else 'no'} "
                          f"| {control[method]:.3f} | {found.top_score - control[method]:+.3f} |", flush=True)


if __name__ == "__main__":
    main()
