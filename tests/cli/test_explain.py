import numpy as np
import pytest
from PIL import Image

from cnnviz.cli.main import main


def test_explain_writes_panels_and_maps(capsys, tmp_path):
    code = main(["explain", "gradcam", "occlusion", "-i", "chelsea", "coffee", "--out", str(tmp_path),
                 "--npy", "--window", "56", "--stride", "56", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{image}-{method}.{suffix}" for image in ("chelsea", "coffee") for method in ("gradcam", "occlusion")
                     for suffix in ("json", "npy", "png")]
    panel = np.asarray(Image.open(tmp_path / "coffee-gradcam.png"))
    assert panel.shape[0] > 224 and panel.shape[1] > 3 * 224
    assert np.load(tmp_path / "coffee-gradcam.npy").shape == (1, 224, 224)
    assert "coffee-occlusion.png" in out


@pytest.mark.parametrize("argv,message", [
    (["explain", "gradcm", "-i", "chelsea"], "invalid choice: 'gradcm'"),
    (["explain", "gradcam", "-i", "chelsea", "--layer", "head.cnv"], "did you mean 'head.conv'"),
    (["explain", "gradcam", "-i", "chelsea", "--target", "tigger cat"], "did you mean 'tiger cat'"),
    (["explain", "occlusion", "-i", "chelsea", "--window", "0"], "window must be at least 1"),
    (["explain", "occlusion", "-i", "chelsea", "--window", "500"], "window must be between 1 and 224"),
    (["explain", "occlusion", "-i", "chelsea", "--fill", "pink"], "invalid choice: 'pink'"),
])
def test_explain_bad_input(cli, tmp_path, argv, message):
    code, _, err = cli(*argv, "--out", tmp_path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_explain_and_evaluate_write_vector_figures_for_papers(tmp_path):
    assert main(["explain", "gradcam", "-i", "chelsea", "--format", "pdf", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "chelsea-gradcam.pdf").read_bytes().startswith(b"%PDF")
    assert (tmp_path / "chelsea-gradcam.png").is_file()  # the raster panel stays
    assert main(["evaluate", "gradcam", "-i", "chelsea", "--curve-steps", "4", "--format", "svg",
                 "--out", str(tmp_path / "eval")]) == 0
    assert b"<svg" in (tmp_path / "eval" / "curves.svg").read_bytes()[:400]
