"""Every registered method, whatever its family, leaves the model exactly as it found it, after success and
after an error (the registry's ``preserve`` guard), and returns finite values."""

import pytest
import torch

from cnnviz import interpret
from cnnviz.interpret import hook_counts
from tests.conftest import assert_unchanged, state_snapshot

# Small settings so each method runs in a moment on the tiny model; a method takes the ones it has.
FAST = {"steps": 2, "samples": 2, "window": 8, "stride": 8, "octaves": 2, "size": 16, "batch_size": 2}
EXTRA = {"style": {"style": torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))}, "actmax": {"preset": "pixels"}}
TARGET = {"actmax": [1, 2], "style": None, "dream": None, "invert": None}  # actmax: one picture per class


def _call(method, model, images):
    options = {k: v for k, v in FAST.items() if k in method.options()}
    options.update(EXTRA.get(method.name, {}))
    if "progress" in method.options():
        options["progress"] = False
    return method.fn(model, images, TARGET.get(method.name, 1), **options)


def _tensors(result):
    if isinstance(result, torch.Tensor):
        return [result]
    return [v for v in vars(result).values() if isinstance(v, torch.Tensor)]


@pytest.mark.parametrize("name", [m.name for m in interpret.methods()])
def test_method_leaves_the_model_unchanged_and_returns_finite_values(tiny, device, name):
    method = interpret.get_method(name)
    tiny.train()
    before, hooks = state_snapshot(tiny), hook_counts(tiny)
    result = _call(method, tiny, torch.rand(2, 3, 16, 16, device=device))
    assert _tensors(result) and all(torch.isfinite(t).all() for t in _tensors(result))
    assert_unchanged(before, tiny)
    assert hook_counts(tiny) == hooks


@pytest.mark.parametrize("name", [m.name for m in interpret.methods()])
def test_method_leaves_the_model_unchanged_when_the_model_raises(tiny, device, name):
    method = interpret.get_method(name)
    tiny.train()
    before, hooks = state_snapshot(tiny), hook_counts(tiny)

    def explode(*_):
        raise RuntimeError("boom")

    handle = tiny.model.conv1.register_forward_hook(explode)  # the first layer: every method runs it
    try:
        with pytest.raises(Exception):
            _call(method, tiny, torch.rand(2, 3, 16, 16, device=device))
    finally:
        handle.remove()
    assert_unchanged(before, tiny)
    assert hook_counts(tiny) == hooks


def test_the_decorator_keeps_each_methods_signature_for_type_checkers():
    import inspect
    import typing

    from cnnviz.interpret.core import registry

    decorate = typing.get_type_hints(registry.method)["return"]  # Callable[[Callable[P, R]], Callable[P, R]]
    [taken], given = typing.get_args(decorate)
    assert isinstance(typing.get_args(taken)[0], typing.ParamSpec)
    assert typing.get_args(taken) == typing.get_args(given)  # parameters and result pass through unchanged
    for m in interpret.methods():
        wrapped = m.fn.__wrapped__
        assert inspect.signature(m.fn) == inspect.signature(wrapped)
        assert m.fn.__annotations__ == wrapped.__annotations__


def test_listing_order_is_declared_not_taken_from_import_order():
    from cnnviz.interpret.core import registry

    built_in = interpret.methods()
    assert all(m.order < 1000 for m in built_in), [m.name for m in built_in if m.order >= 1000]
    assert [m.order for m in built_in] == sorted(m.order for m in built_in)
    names = [m.name for m in built_in]
    assert names[:5] == ["occlusion", "gradient", "smoothgrad", "integrated_gradients", "guided_backprop"]
    assert names.index("gradcam") < names.index("rise") < names.index("captum:Saliency") < names.index("actmax")

    @registry.method("zz_user_method", "attribution", "a user's method, registered first in the file")
    def early(handle, images, target=None):
        return images[:, :1]

    @registry.method("aa_user_method", "attribution", "a user's method with a place of its own", order=1)
    def placed(handle, images, target=None):
        return images[:, :1]

    try:
        listed = [m.name for m in interpret.methods("attribution")]
        assert listed[0] == "aa_user_method" and listed[-1] == "zz_user_method"  # undeclared: after the built-ins
    finally:
        del registry._METHODS["zz_user_method"], registry._METHODS["aa_user_method"]


def test_an_old_flat_module_path_still_imports_with_a_warning(recwarn):
    import importlib
    import sys

    for old, new in [("cnnviz.interpret.render", "cnnviz.interpret.views.pixels"), ("cnnviz.interpret.cam_core",
                                                                       "cnnviz.interpret.attribution.cam.core")]:
        sys.modules.pop(old, None)
        module = importlib.import_module(old)
        assert module is importlib.import_module(new) and module.__spec__.name == new
        assert any(new in str(w.message) and w.category is DeprecationWarning for w in recwarn.list)


def test_import_zoo_leaves_the_training_loop_unloaded():
    import subprocess
    import sys

    code = ("import sys; from cnnviz import zoo, interpret; "
            "print(sorted(m for m in sys.modules if m.startswith(('cnnviz.zoo.train.lo', 'cnnviz.zoo.train.run'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['cnnviz.zoo.train.log']"  # the log's format, not the loop


def test_options_are_described_once_from_the_signature_and_docstring():
    from typing import Literal

    from cnnviz.interpret.core import option_specs
    from cnnviz.zoo.core import OpenUnitInterval, PositiveInt

    def shade(images, *, taps: PositiveInt = 5, level: OpenUnitInterval | None = None,
              mode: Literal["same", "valid"] = "valid", fast: bool = True, layer: str = "x", fn=None):
        """Shade.

        Args:
            taps: filter length, in
                pixels.
            mode: border rule.
        """

    specs = option_specs(shade)
    assert list(specs) == ["taps", "level", "mode", "fast", "fn"]  # layer is the methods' own argument
    assert (specs["taps"].type, specs["taps"].minimum, specs["taps"].maximum, specs["taps"].default) == (int, 1, None, 5)
    assert specs["taps"].help == "filter length, in pixels." and not specs["taps"].nullable
    level = specs["level"]
    assert level.type is float and level.nullable and level.default is None
    assert (level.minimum, level.maximum, level.bounds.open_low, level.bounds.open_high) == (0, 1, True, True)
    assert specs["mode"].choices == ("same", "valid") and specs["mode"].type is str and specs["mode"].default == "valid"
    assert specs["fast"].type is bool and specs["fast"].default is True and specs["fast"].choices is None
    assert specs["fn"].type is None and specs["fn"].help == ""  # a Python-only value


@pytest.mark.parametrize("method", interpret.methods(), ids=lambda m: m.name)
def test_every_methods_described_defaults_are_its_signatures(method):
    import inspect

    signature = inspect.signature(method.fn).parameters
    options = method.options()
    assert set(options) == {n for n, p in signature.items() if p.kind is p.KEYWORD_ONLY and n != "layer"}
    for name, spec in options.items():
        assert spec.default is signature[name].default or spec.default == signature[name].default
