"""captum's catalog through the registry: ``captum:DeepLift``, ``captum:NoiseTunnel(IntegratedGradients)``, ...

Any ``captum.attr`` attribution class runs by name, so it gets what every cnnviz method gets: the
handle's preprocessing, targets by class name, the no-mutation guard, batching, rendering,
faithfulness scores, the CLI and the gallery. Options are mapped onto captum's arguments once, here:
``steps`` -> ``n_steps``, ``samples`` -> ``n_samples``/``nt_samples``, ``noise`` -> ``stdevs``,
``baseline`` -> ``baselines``, ``segments`` -> a grid ``feature_mask`` (perturbation methods) and
``Occlusion``'s window, ``batch_size`` -> ``internal_batch_size``/``perturbations_per_eval``.
captum draws its random numbers from the global torch, numpy and Python generators; here they come
from ``seed`` and every generator is restored afterwards, so the caller's random state is left as it was.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.get_method("captum:InputXGradient").fn(handle, images, "espresso").shape
    torch.Size([1, 3, 224, 224])
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.interpret.attribution.cam.core import to_grid
from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.random_state import numpy_and_python_rng
from cnnviz.interpret.core.registry import Method, get_method, method, method_factory, methods
from cnnviz.interpret.core.removal import Fill, removed_pixels
from cnnviz.interpret.core.targets import Target, is_score_fn, resolve_target
from cnnviz.zoo.core import CnnvizError, closest
from cnnviz.zoo.handle import ModelHandle

PREFIX = "captum:"

# What each method is, where it comes from, and what it is good and bad at (shown in --help and docs).
PAPERS: dict[str, str] = {
    "Saliency": "Simonyan et al. 2014. Good: one backward pass; bad: noisy, saturates.",
    "InputXGradient": "Shrikumar et al. 2016. Good: one pass, sharper than the gradient; bad: inherits its noise.",
    "IntegratedGradients": "Sundararajan et al. 2017. Good: complete (sums to f(x) - f(baseline)); bad: "
                           "depends on the baseline, steps passes.",
    "DeepLift": "Shrikumar et al. 2017. Good: one pass, complete w.r.t. the baseline; bad: rules only for "
                "known modules, baseline-dependent.",
    "DeepLiftShap": "Lundberg & Lee 2017. Good: DeepLIFT averaged over baselines (the given one, gray); bad: as "
                    "DeepLIFT.",
    "GradientShap": "Lundberg & Lee 2017. Good: expected gradients, robust to one baseline; bad: random, "
                    "needs samples.",
    "GuidedBackprop": "Springenberg et al. 2015. Good: sharp edges; bad: only nn.ReLU modules are guided, "
                      "and it fails the randomization check.",
    "Deconvolution": "Zeiler & Fergus 2014. Good: shows edges the filters like; bad: close to class-independent.",
    "GuidedGradCam": "Selvaraju et al. 2017. Good: sharp and class-discriminative; bad: guided backprop's flaws.",
    "LRP": "Bach et al. 2015. Good: conservative relevance; bad: needs rules for every layer type (fails on "
           "custom modules).",
    "FeatureAblation": "Zeiler & Fergus 2014 style, on a grid of segments. Good: model-agnostic; bad: one pass "
                       "per segment, ignores interactions.",
    "ShapleyValueSampling": "Castro et al. 2009. Good: Shapley values of segments; bad: samples x segments passes.",
    "Lime": "Ribeiro et al. 2016. Good: model-agnostic local linear model; bad: random, sensitive to the "
            "segmentation and kernel.",
    "KernelShap": "Lundberg & Lee 2017. Good: Shapley-weighted LIME; bad: random, needs many samples.",
    "Occlusion": "Zeiler & Fergus 2014. Good: simple and faithful; bad: one pass per window.",
    "LayerGradCam": "Selvaraju et al. 2017 (captum's). Good: coarse but robust; bad: layer resolution.",
    "LayerGradientXActivation": "Gradient x activation at a layer. Good: cheap; bad: signed, noisy.",
    "LayerDeepLift": "Shrikumar et al. 2017 at a layer. Good: one pass; bad: as DeepLIFT.",
    "LayerConductance": "Dhamdhere et al. 2018. Good: IG flow through a layer; bad: steps passes.",
}
# Registered up front, so ``cnnviz explain captum`` runs the family; any other class works by name too.
CATALOG = ["Saliency", "InputXGradient", "IntegratedGradients", "DeepLift", "DeepLiftShap", "GradientShap",
           "GuidedBackprop", "Deconvolution", "FeatureAblation", "ShapleyValueSampling", "Lime", "KernelShap",
           "Occlusion", "NoiseTunnel(Saliency)", "NoiseTunnel(IntegratedGradients)", "LayerGradCam",
           "GuidedGradCam", "LRP"]


def parse(name: str) -> tuple[str | None, str]:
    """``"NoiseTunnel(IntegratedGradients)"`` -> ``("NoiseTunnel", "IntegratedGradients")``; plain names -> (None, name)."""
    match = re.fullmatch(r"\s*(\w+)\s*(?:\(\s*(\w+)\s*\))?\s*", name)
    if not match:
        raise CnnvizError(f"cannot read captum method {name!r}: write Name or Wrapper(Name), e.g. NoiseTunnel(Saliency)")
    outer, inner = match.groups()
    if inner and outer != "NoiseTunnel":
        raise CnnvizError(f"captum wraps methods only in NoiseTunnel: write NoiseTunnel({inner}), not {name!r}")
    return (outer, inner) if inner else (None, outer)


def captum_class(name: str) -> type:
    """The ``captum.attr`` attribution class called ``name``; unknown names get the closest matches."""
    import captum.attr

    classes = {n: c for n, c in vars(captum.attr).items()
               if inspect.isclass(c) and issubclass(c, captum.attr.Attribution) and not inspect.isabstract(c)}
    if name not in classes:
        raise CnnvizError(f"captum.attr has no attribution method {name!r}{closest(name, list(classes))}")
    if name.startswith("Neuron"):
        raise CnnvizError(f"captum:{name} explains one neuron, which needs a neuron selector: use the layer or "
                          "input methods here")
    return classes[name]


def needs_layer(cls: type) -> bool:
    """Whether the class is built with a layer (``LayerGradCam``, ``GuidedGradCam``, ...)."""
    return "layer" in inspect.signature(cls.__init__).parameters


def grid_mask(images: torch.Tensor, segments: int) -> torch.Tensor:
    """A ``segments x segments`` grid of feature ids ``(B, 1, H, W)``: the superpixels of perturbation methods."""
    height, width = images.shape[-2:]
    rows = torch.arange(height, device=images.device) * segments // height
    cols = torch.arange(width, device=images.device) * segments // width
    ids = rows[:, None] * segments + cols[None, :]
    return ids.expand(images.shape[0], 1, height, width).contiguous()


def attribute_kwargs(attribute: Callable[..., Any], images: torch.Tensor, *, steps: int, samples: int,
                     baseline: torch.Tensor, noise: float, segments: int, per_eval: int,
                     batch_size: int) -> dict[str, Any]:
    """The options a captum ``attribute`` takes, in its own names; ``baseline`` is the baseline image of each
    row of ``images`` (what :func:`interpret.core.removal.removed_pixels` makes of them)."""
    window = max(1, images.shape[-1] // segments)
    candidates: dict[str, Any] = {
        "n_steps": steps, "n_samples": samples, "stdevs": noise, "feature_mask": grid_mask(images, segments),
        "perturbations_per_eval": per_eval, "internal_batch_size": batch_size,
        "sliding_window_shapes": (images.shape[1], window, window), "strides": max(1, window // 2),
        "baselines": baseline,
    }
    if type(getattr(attribute, "__self__", None)).__name__ in ("DeepLiftShap", "GradientShap"):
        # SHAP methods average over a distribution of baselines, shared by the batch: the given one and mid-gray.
        if images.shape[0] > 1 and not torch.equal(baseline[:1].expand_as(baseline), baseline):
            raise CnnvizError("SHAP methods share one baseline distribution across the images: give a baseline "
                              "that does not depend on the image (dataset_mean, black or gray)")
        candidates["baselines"] = torch.stack([baseline[0], torch.full_like(images[0], 0.5)])
    accepted = inspect.signature(attribute).parameters
    return {k: v for k, v in candidates.items() if k in accepted}


class ScoredModel(nn.Module):
    """The handle followed by a target callable, as one module with one output column: captum methods that
    hook the model's modules (DeepLift, guided backprop, LRP) find the handle's layers inside it."""

    def __init__(self, handle: ModelHandle, score: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.handle, self.score = handle, score

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.score(self.handle(images))[:, None]


def run_captum(name: str, handle: ModelHandle, images: torch.Tensor, target: Target, *, layer: Any = None,
               steps: int = 32, samples: int = 25, baseline: Fill = "dataset_mean", noise: float = 0.15,
               segments: int = 14, seed: int | None = 0, batch_size: int | None = None) -> torch.Tensor:
    """Run captum method ``name`` on a batch; layer methods' maps are summed over channels and upsampled.

    ``baseline`` is what a removed pixel becomes (:mod:`interpret.core.removal`): by default the dataset mean,
    because captum's default zero baseline is used on normalized inputs, where zero is the mean."""
    outer, inner = parse(name)
    cls = captum_class(inner)
    indices = resolve_target(handle, images, target)
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor] = handle
    if is_score_fn(indices):
        model, indices = ScoredModel(handle, indices), torch.zeros(images.shape[0], dtype=torch.long)
    if needs_layer(cls):
        module = handle.layer(layer if layer is not None else _default_layer(handle))
        attribution = cls(model, module)
    else:
        attribution = cls(model)
    if outer is not None:
        wrapper = captum_class(outer)
        attribution = wrapper(attribution)
    batch_size = batch_size or auto_batch_size(handle)
    devices = [handle.device] if handle.device.type == "cuda" else []
    maps = []
    per_image = cls.__name__ in ("Lime", "KernelShap")  # their surrogate model is fit one image at a time
    step = 1 if per_image else batch_size
    with torch.random.fork_rng(devices=devices, enabled=seed is not None), numpy_and_python_rng(seed):
        if seed is not None:
            torch.manual_seed(seed)
        for rows in chunks(images.shape[0], step, desc=f"captum:{name}"):
            x = images[rows]
            options = dict(steps=steps, samples=samples, baseline=removed_pixels(handle, x, baseline).contiguous(),
                           noise=noise, segments=segments,
                           per_eval=max(1, batch_size // x.shape[0]), batch_size=batch_size)
            if outer == "NoiseTunnel":
                kwargs = attribute_kwargs(attribution.attribution_method.attribute, x, **options)
                kwargs.pop("stdevs", None)  # the tunnel's noise, not the inner method's
                kwargs.update(nt_samples=samples, stdevs=noise, nt_samples_batch_size=batch_size)
            else:
                kwargs = attribute_kwargs(attribution.attribute, x, **options)
            try:
                with warnings.catch_warnings():  # captum's notes on hooks and requires_grad say nothing to the user
                    warnings.simplefilter("ignore", UserWarning)
                    out = attribution.attribute(x, target=indices[rows].tolist(), **kwargs)
            except (RuntimeError, AssertionError, TypeError, ValueError, NotImplementedError, AttributeError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise CnnvizError(f"captum:{name} cannot run on {handle.name}: {first}") from None
            maps.append(_as_map(out.detach(), images.shape[-2:]))
    return torch.cat(maps)


def _default_layer(handle: ModelHandle) -> str:
    if handle.default_layer is None:
        raise CnnvizError(f"{handle.name} has no default layer: pass layer= (see cnnviz layers)")
    return handle.default_layer


def _as_map(out: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Input-sized attributions pass through; a layer's become a channel sum upsampled to ``size``."""
    if out.dim() == 4 and tuple(out.shape[-2:]) == tuple(size):
        return out
    grid = to_grid(out)
    return F.interpolate(grid.sum(dim=1, keepdim=True), size=tuple(size), mode="bilinear", align_corners=False)


def _describe(name: str) -> tuple[str, str]:
    """``(summary, about)``: one line for listings, and the paper with what the method is good and bad at."""
    outer, inner = parse(name)
    about = PAPERS.get(inner, "see captum's documentation.")
    if outer == "NoiseTunnel":
        return (f"SmoothGrad (Smilkov et al. 2017) over captum's {inner}",
                f"SmoothGrad (Smilkov et al. 2017) over {inner}: averaged over noisy copies. {about}")
    return f"captum's {inner}: {about.split('. Good')[0]}", about


def register(name: str) -> Method:
    """Register ``captum:name`` (once) and return it."""
    full = PREFIX + name
    existing = {m.name: m for m in methods()}
    if full in existing:
        return existing[full]
    outer, inner = parse(name)
    cls = captum_class(inner)
    if outer is not None:
        captum_class(outer)
    summary, about = _describe(name)
    doc = (f"captum.attr.{name} through cnnviz: {about}\n\n"
           "    Args:\n"
           "        steps: integration steps (n_steps) of path methods.\n"
           "        samples: samples of sampling methods (n_samples, nt_samples).\n"
           "        baseline: the baseline image, what a removed pixel becomes: dataset_mean (captum's zero\n"
           "            baseline on a normalized input), black, gray, mean (the image's) or blur.\n"
           "        noise: noise standard deviation (stdevs) of GradientShap and NoiseTunnel.\n"
           "        segments: perturbation methods act on a segments x segments grid of superpixels.\n"
           "        seed: seeds captum's random draws (the global random state is restored).\n"
           "        batch_size: images or perturbations per pass (default: sized to the device).\n")

    if needs_layer(cls):
        def fn(handle: ModelHandle, images: torch.Tensor, target: Target = None, *, layer: str | None = None,
               steps: int = 32, samples: int = 25, baseline: Fill = "dataset_mean", noise: float = 0.15,
               segments: int = 14, seed: int | None = 0, batch_size: int | None = None) -> torch.Tensor:
            return run_captum(name, handle, images, target, layer=layer, steps=steps, samples=samples,
                              baseline=baseline, noise=noise, segments=segments, seed=seed, batch_size=batch_size)
    else:
        def fn(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,  # type: ignore[misc]
               steps: int = 32, samples: int = 25, baseline: Fill = "dataset_mean", noise: float = 0.15,
               segments: int = 14, seed: int | None = 0, batch_size: int | None = None) -> torch.Tensor:
            return run_captum(name, handle, images, target, steps=steps, samples=samples, baseline=baseline,
                              noise=noise, segments=segments, seed=seed, batch_size=batch_size)
    fn.__doc__ = doc
    fn.__name__ = fn.__qualname__ = "captum_" + re.sub(r"\W", "_", name)
    method(full, "attribution", summary, group="captum", order=60)(fn)
    return get_method(full)


method_factory(PREFIX, lambda full: register(full[len(PREFIX):]))
for _name in CATALOG:
    register(_name)
