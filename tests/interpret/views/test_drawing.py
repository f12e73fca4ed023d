"""Drawing in one place: views (result sheets), charts (matplotlib, PNG/SVG/PDF), notebook display, the
training log format, the one early stop, and zoo's plain-torch mechanisms behind interpret's names."""

import ast
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnviz.interpret.views import charts, pixels, sheets
from tests.conftest import REPO, assert_unchanged, state_snapshot
from cnnviz.zoo.core import CnnvizError


def test_each_drawing_helper_is_defined_once():
    helpers = {"enlarge", "fit", "vstack", "hstack", "grid", "caption", "captioned_grid", "colorize", "overlay",
               "colorbar", "nice_ticks", "line_chart", "explanation_panel", "attack_panel", "patch_tile"}
    where: dict[str, list[str]] = {}
    for path in [p for package in ("zoo", "interpret", "cli", "gallery") for p in (REPO / "cnnviz" / package).rglob("*.py")]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name in helpers:
                where.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    assert set(where) == helpers
    assert {name: files for name, files in where.items() if len(files) > 1} == {}


def test_a_picture_displays_itself_as_the_same_pixels():
    panel = sheets.explanation_panel(torch.rand(3, 32, 32), torch.rand(32, 32), "gradient")
    assert isinstance(panel, sheets.Picture) and panel.dtype == np.uint8
    decoded = np.asarray(Image.open(io.BytesIO(panel._repr_png_())))
    assert np.array_equal(decoded, np.asarray(panel))
    assert repr(panel) == f"Picture({panel.shape[0]}x{panel.shape[1]})"


def test_show_takes_batches_maps_and_figures():
    assert sheets.show(torch.rand(2, 3, 16, 16)).shape == (16, 36, 3)  # two images, 4 px apart
    assert sheets.show(torch.randn(1, 16, 16)).shape == (16, 16, 3)  # a signed map is coloured
    png = sheets.show(charts.bars({"a": 1.0}, title="t"))._repr_png_()
    assert png.startswith(b"\x89PNG")
    with pytest.raises(CnnvizError):
        sheets.show("a cat")


def test_the_colour_bar_is_numbered_with_the_maps_own_values():
    image, values = torch.rand(3, 48, 48), torch.rand(48, 48)
    small, large = sheets.explanation_panel(image, values, "x"), sheets.explanation_panel(image, values * 100, "x")
    side = 48 * 3 + 4 * 3  # image, map and overlay, 4 px apart: the same pictures
    assert np.array_equal(small[:48, :side], large[:48, :side])
    assert not np.array_equal(small[:48, side:], large[:48, side:])  # only the numbers on the bar differ
    assert pixels.map_range(values * 100, percentile=99.5) == pytest.approx(
        (float(values.min()) * 100, float(np.percentile(values.numpy(), 99.5)) * 100), rel=1e-5)


def test_captions_take_a_colour():
    red = pixels.caption(np.full((4, 60, 3), 255, np.uint8), "overfit", color=(214, 39, 40))
    band = red[4:].reshape(-1, 3).astype(int)
    inked = band[band.min(1) < 200]  # the strokes, not their anti-aliased rims
    assert len(inked) > 20 and (inked[:, 0] > inked[:, 1] + 40).all()  # every stroke is red
    black = pixels.caption(np.full((4, 60, 3), 255, np.uint8), "overfit").reshape(-1, 3).astype(int)
    assert (np.ptp(black, axis=1) < 10).all()  # the default ink stays gray


def test_enlarge_keeps_within_the_side_and_fit_never_crops():
    image = np.arange(37 * 20 * 3, dtype=np.uint8).reshape(37, 20, 3)
    assert pixels.enlarge(image, 64).shape == (37, 20, 3)  # 64 // 37 = 1: no factor fits
    assert pixels.enlarge(image, 80).shape == (74, 40, 3)
    fitted = pixels.fit(image, 80)
    assert fitted.shape == (80, 80, 3) and np.array_equal(fitted[:74, :40], pixels.enlarge(image, 80))


@pytest.mark.parametrize("chart_format, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_charts_save_as_png_svg_and_pdf(tmp_path, chart_format, magic):
    fig = charts.confusion(torch.tensor([[5, 1], [2, 7]]), ["cat", "dog"])
    path = charts.save(fig, tmp_path / "confusion", chart_format)
    assert path.name == f"confusion.{chart_format}" and path.read_bytes().startswith(magic)
    with pytest.raises(CnnvizError, match="unknown figure format"):
        charts.save(fig, tmp_path / "confusion.gif")


def test_chart_text_is_unicode():
    def drawn(title):
        return charts.to_array(charts.line_chart([charts.Series("x", [1, 2], [1, 2])], title=title, xlabel="x",
                                                 ylabel="y"))
    assert not np.array_equal(drawn("αβγ ≤ 5 %"), drawn("??? ? 5 %"))  # Hershey fonts drew both as ???


def test_training_report_of_the_shipped_log():
    from cnnviz.zoo.catalog import fashion_log_path
    from cnnviz.zoo.train import read_training_log

    figures = sheets.training_report(read_training_log(fashion_log_path()))
    assert list(figures) == ["curves", "confusion", "gradients", "activations"]
    assert all(charts.to_array(f).dtype == np.uint8 for f in figures.values())


def test_training_log_reads_the_shipped_file_and_writes_it_back_unchanged(tmp_path):
    from cnnviz.zoo.catalog import fashion_log_path
    from cnnviz.zoo.train import TrainingLog, handle_from_log

    raw = json.loads(fashion_log_path().read_text())
    log = TrainingLog.read(fashion_log_path())
    assert log.to_dict() == raw and list(log.to_dict()) == list(raw)
    assert TrainingLog.read(log.write(tmp_path / "copy-log.json")) == log
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        from_log, from_dict = handle_from_log(log, None, "a"), handle_from_log(raw, None, "b")
        torch.manual_seed(0)
    assert from_log.config.mean == from_dict.config.mean and from_log.classes == from_dict.classes
    assert from_log(images).shape == (2, 10)
    (tmp_path / "bad-log.json").write_text('{"spec": {}}')
    with pytest.raises(CnnvizError, match="bad-log.json"):
        TrainingLog.read(tmp_path / "bad-log.json")
    with pytest.raises(CnnvizError, match="no training log"):
        TrainingLog.read(tmp_path / "missing-log.json")


class Swallowing(nn.Module):
    """A model whose forward catches every Exception (some real models do)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Conv2d(3, 2, 3), nn.Conv2d(2, 2, 3)
        self.seen: list[str] = []

    def forward(self, x):
        try:
            x = self.first(x)
        except Exception:  # noqa: BLE001
            self.seen.append("swallowed")
        self.seen.append("second")
        return self.second(x)


def test_run_until_stops_after_its_modules_even_through_a_models_except():
    from cnnviz.zoo.core import hook_counts, record, run_until

    net = Swallowing().train()
    before, hooks = state_snapshot(net), hook_counts(net)
    with record({"first": net.first}) as rec:
        assert run_until(net, torch.rand(1, 3, 8, 8), [net.first]) is None
    assert net.seen == [] and rec["first"].output.shape == (1, 2, 6, 6)
    assert run_until(net, torch.rand(1, 3, 8, 8), []).shape == (1, 2, 4, 4)  # nothing to wait for: a full pass
    assert hook_counts(net) == hooks
    assert_unchanged(before, net)


def test_zoo_owns_the_plain_torch_mechanisms_interpret_uses():
    from cnnviz import zoo
    import cnnviz.zoo.core.guard
    import cnnviz.zoo.core.hooks

    assert zoo.core.preserve is zoo.core.guard.preserve
    assert zoo.core.record is zoo.core.hooks.record and zoo.core.run_until is zoo.core.hooks.run_until


def test_a_style_result_displays_its_images(tiny):
    from cnnviz.interpret.optimize.style import style_transfer

    result = style_transfer(tiny, torch.rand(1, 3, 16, 16, device=tiny.device), style=torch.rand(3, 16, 16),
                            steps=1, progress=False)
    shown = np.asarray(Image.open(io.BytesIO(sheets.show(result.images)._repr_png_())))  # computing never draws
    assert np.array_equal(shown, pixels.to_uint8(result.images[0]))
