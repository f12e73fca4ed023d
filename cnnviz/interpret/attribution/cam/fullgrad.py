"""FullGrad (Srinivas & Fleuret 2019): the input gradient plus every bias's gradient, on the CAM core's passes.

Example:
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("efficientnet_lite0", device="cpu")
    >>> images = handle.prepare([zoo.load_image("coffee")])
    >>> interpret.fullgrad(handle, images, "espresso").shape
    torch.Size([1, 1, 224, 224])
"""

from __future__ import annotations

import torch

from cnnviz.interpret.attribution.cam.core import min_max, upsample
from cnnviz.interpret.core.batching import auto_batch_size, chunks
from cnnviz.interpret.core.registry import method
from cnnviz.interpret.core.targets import Target, pass_target, take, target_scores
from cnnviz.zoo.core import CnnvizError, record
from cnnviz.zoo.handle import ModelHandle

# --- FullGrad: every bias of the network ------------------------------------------------------------

def bias_layers(handle: ModelHandle) -> dict[str, torch.nn.Module]:
    """Every ``Conv2d`` and ``BatchNorm2d`` with a bias: the layers FullGrad reads."""
    return {name: module for name, module in handle.model.named_modules()
            if type(module) in (torch.nn.Conv2d, torch.nn.BatchNorm2d) and module.bias is not None}


def effective_bias(module: torch.nn.Module) -> torch.Tensor:
    """The bias a layer adds in eval mode (for batch norm: ``beta - mean * gamma / sqrt(var + eps)``)."""
    if isinstance(module, torch.nn.BatchNorm2d) and module.running_mean is not None:
        return module.bias - module.running_mean * module.weight / torch.sqrt(module.running_var + module.eps)
    return module.bias


@method("fullgrad", "attribution", "FullGrad: input gradient plus every layer's bias gradients", group="cams", order=45)
def fullgrad(handle: ModelHandle, images: torch.Tensor, target: Target = None, *,
             batch_size: int | None = None) -> torch.Tensor:
    """FullGrad (Srinivas & Fleuret 2019): ``|x * dS/dx|`` plus ``|b * dS/db|`` of every conv and batch-norm
    bias, each channel scaled to [0, 1], upsampled and summed.

    Good: complete (input and bias gradients add up to the score) and sharp; bad: reads every layer, so it
    takes no ``layer=``, and a network without conv or batch-norm biases (a ViT) leaves only the input term.

    Measured on efficientnet_lite0 (chelsea, coffee, rocket; BENCHMARKS.md leaderboard, 2026-12-01):
    deletion AUC 0.110 (lower is better), insertion AUC 0.360 (higher is better).

    Args:
        batch_size: images per forward/backward pass.
    """
    layers = bias_layers(handle)
    if not layers:
        raise CnnvizError(f"FullGrad reads the biases of Conv2d and BatchNorm2d layers, and {handle.name} has none")
    resolved = pass_target(handle, images, target)
    size = images.shape[-2:]
    batch_size = batch_size or auto_batch_size(handle, backward=True)
    maps = []
    for rows in chunks(images.shape[0], batch_size, desc="fullgrad"):
        x = images[rows].detach().requires_grad_(True)
        with torch.enable_grad(), record(layers, detach=False) as recs:
            score = target_scores(handle, None if resolved is None else take(resolved, rows), handle(x)).sum()
            outputs = [recs[name].output for name in layers]
            grads = torch.autograd.grad(score, [x, *outputs], allow_unused=True)
        terms = [(grads[0] * x.detach()).abs()]
        terms += [(effective_bias(module).view(1, -1, 1, 1) * g).abs()
                  for module, g in zip(layers.values(), grads[1:]) if g is not None]
        # Each channel is scaled to [0, 1] on its own grid; bilinear upsampling is linear, so a layer's scaled
        # channels are summed first and upsampled once (the same result, one resize per layer, not per channel).
        maps.append(sum(upsample(min_max(t.flatten(0, 1)).view(t.shape).sum(dim=1, keepdim=True), size)
                        for t in terms))
    return torch.cat(maps)

