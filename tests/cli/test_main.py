import subprocess
import sys

import pytest
from PIL import Image

from cnnviz.cli.main import main


def test_predict_chelsea_prints_a_cat(cli):
    code, out, err = cli("predict", "--image", "chelsea", "--top", "3", "--device", "cpu")
    assert code == 0
    first = out.splitlines()[1]
    assert any(cat in first for cat in ("tabby", "tiger cat", "Egyptian cat"))


def test_predict_target_probability(cli):
    code, out, _ = cli("predict", "-i", "coffee", "--target", "espresso", "--device", "cpu")
    assert code == 0 and "target espresso #967" in out


def test_models_and_layers(cli):
    code, out, _ = cli("models")
    assert code == 0 and out.startswith("efficientnet_lite0  weights here")
    code, out, _ = cli("layers", "resnet18", "--device", "cpu")
    assert code == 0 and "x2 calls" in out and out.rstrip().endswith("equal")


@pytest.mark.parametrize("argv,message", [
    (["predict", "-i", "missing.png"], "no image 'missing.png'"),
    (["predict", "-i", "chelsea", "--model", "resnet-18"], "did you mean 'resnet18'"),
    (["predict", "-i", "chelsea", "--target", "1000"], "out of range"),
    (["predict", "-i", "chelsea", "--target", "espreso"], "did you mean 'espresso'"),
    (["predict", "-i", "chelsea", "--top", "0"], "--top must be at least 1"),
    (["layers", "vgg"], "unknown model 'vgg'"),
    (["predict", "-i", "chelsea", "--device", "tpu"], "unknown device"),
])
def test_bad_input_is_one_line_and_exit_2(cli, argv, message):
    code, out, err = cli(*argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_not_an_image_file(cli, tmp_path):
    fake = tmp_path / "cat.jpg"
    fake.write_text("not really")
    code, _, err = cli("predict", "-i", str(fake))
    assert code == 2 and "not an image" in err


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--image" in err


@pytest.mark.parametrize("cmd", [[], ["predict"], ["layers"], ["models"]])
def test_help_everywhere(capsys, cmd):
    with pytest.raises(SystemExit) as exit_info:
        main([*cmd, "--help"])
    assert exit_info.value.code == 0
    assert "usage: cnnviz" in capsys.readouterr().out


def test_console_script_exit_code(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    result = subprocess.run([sys.executable, "-m", "cnnviz.cli.main", "predict", "-i", str(tmp_path / "nope.png")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
