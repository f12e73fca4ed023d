"""cnnviz owns one name on the Python path, so it installs beside the field's other libraries: InterpretML's
``interpret`` (the ``interpret-core`` wheel) and cnnviz import side by side in one environment."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_interpretml_and_cnnviz_import_side_by_side():
    pytest.importorskip("interpret.glassbox", reason="the test extra installs interpret-core")
    import interpret  # InterpretML's
    from interpret.glassbox import ExplainableBoostingClassifier

    from cnnviz import interpret as ours
    from cnnviz import zoo

    assert Path(interpret.__file__).resolve().parent != Path(ours.__file__).resolve().parent
    assert ours.__name__ == "cnnviz.interpret" and zoo.__name__ == "cnnviz.zoo"
    assert hasattr(ours, "gradcam") and not hasattr(interpret, "gradcam")
    assert ExplainableBoostingClassifier.__module__.startswith("interpret.")


def test_import_cnnviz_loads_its_packages_on_first_use():
    code = ("import sys, cnnviz; before = 'cnnviz.interpret' in sys.modules; "
            "module = cnnviz.interpret; print(before, module.__name__, 'cnnviz.cli' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.stdout.split() == ["False", "cnnviz.interpret", "False"], done.stderr


@pytest.mark.slow
def test_the_wheel_puts_one_name_on_the_python_path(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                            "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    if built.returncode != 0:
        pytest.skip(f"could not build a wheel here: {built.stderr.strip().splitlines()[-1:]}")
    (wheel,) = tmp_path.glob("cnnviz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"cnnviz"}
    for data in ("cnnviz/py.typed", "cnnviz/zoo/weights/fashion_cnn.pt", "cnnviz/explorer/static/explorer.js",
                 "cnnviz/gallery/templates/gallery_page.html"):
        assert data in names, f"{data} is missing from the wheel"
