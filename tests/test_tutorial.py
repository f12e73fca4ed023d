"""The tutorial notebook (docs/tutorial.ipynb) runs end to end, executed by nbmake in a fresh kernel."""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def test_the_notebook_walks_the_course_and_shows_pictures_inline():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    text = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown").lower()
    for way in ("filters", "feature maps", "patches", "occlusion", "gradient", "guided backprop",
                "optimizing over images", "invert", "deepdream", "style", "fooling"):
        assert way in text, f"the tutorial skips {way}"
    assert all(c.get("outputs", []) == [] for c in notebook.cells if c.cell_type == "code")  # shipped clean


@pytest.mark.slow
def test_the_notebook_runs(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbmake",
                           "--nbmake-timeout=300", str(NOTEBOOK)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
