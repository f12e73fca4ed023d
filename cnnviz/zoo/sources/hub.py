"""Models of the libraries: ``torchvision:NAME`` and ``timm:NAME``, weights from their local caches or a path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.core.errors import CnnvizError, closest
from cnnviz.zoo.data.imagenet import IMAGENET_CLASSES
from cnnviz.zoo.handle.config import ModelConfig
from cnnviz.zoo.handle.handle import ModelHandle
from cnnviz.zoo.handle.layers import guess_cam_layer
from cnnviz.zoo.handle.weights import read_checkpoint
from cnnviz.zoo.models.torchvision_dense import build_dense, dense_task
from cnnviz.zoo.sources.building import Weights, call_factory, fill_state, matched_config


# --- torchvision ---------------------------------------------------------------------------------------------

def _torchvision_names() -> list[str]:
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def _torchvision_weights(name: str) -> Any:
    import torchvision

    if name not in _torchvision_names():
        raise CnnvizError(f"torchvision has no classification model {name!r}"
                          f"{closest(name, _torchvision_names())}")
    return torchvision.models.get_model_weights(name).DEFAULT


def torchvision_config(name: str, num_classes: int | None) -> ModelConfig:
    weights = _torchvision_weights(name)
    transforms = weights.transforms()
    crop, resize = transforms.crop_size[0], transforms.resize_size[0]
    categories = weights.meta.get("categories")
    min_size = tuple(weights.meta.get("min_size", (1, 1)))
    own = num_classes is None or num_classes == len(categories or ())
    return ModelConfig(input_size=crop, resize_size=resize, mean=tuple(transforms.mean), std=tuple(transforms.std),
                       classes=tuple(categories) if categories and own else None,
                       num_classes=None if own else num_classes,
                       fixed_input=min_size == (crop, crop), source=f"torchvision:{name}")


def build_torchvision(name: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                       ) -> ModelHandle:
    import torchvision

    if dense_task(name):
        return build_dense(name, weights, num_classes=num_classes, model_args=model_args)
    config = torchvision_config(name, num_classes)
    state = None
    if weights == "pretrained":
        url = _torchvision_weights(name).url
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        if not path.is_file():
            raise CnnvizError(f"the weights of torchvision:{name} are not on this machine: expected {path}. "
                              f"Download {url} where there is network and copy it there, or pass --weights PATH "
                              "(--weights random for random weights)")
        weights = path
    if weights is not None:
        state = read_checkpoint(weights)
    args = dict(model_args)
    if num_classes is not None:
        args["num_classes"] = num_classes
    if name == "googlenet" or name == "inception_v3":
        args.setdefault("aux_logits", False)
        args.setdefault("init_weights", True)
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith("Aux")}
    module = call_factory(lambda **kw: torchvision.models.get_model(name, weights=None, **kw), args,
                          f"torchvision:{name}")
    module = fill_state(module, state, num_classes, f"torchvision:{name}",
                   lambda n: torchvision.models.get_model(name, weights=None, **{**args, "num_classes": n}))
    config = matched_config(config.replace(default_layer=_torchvision_layer(name, module)), module)
    return ModelHandle(module.eval(), name=name, config=config)


def _torchvision_layer(name: str, module: nn.Module) -> str | None:
    if name.startswith("vit_"):
        # The last block's first norm: the tokens before attention, as pytorch-grad-cam's ViT example uses.
        return f"encoder.layers.encoder_layer_{len(module.encoder.layers) - 1}.ln_1"
    return guess_cam_layer(module)


# --- timm ----------------------------------------------------------------------------------------------------

def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise CnnvizError("timm:NAME models need timm: pip install 'cnnviz[timm]'") from None
    return timm


def _timm_cfg(name: str) -> Any:
    timm = _timm()
    cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=False) if timm.is_model(name) else None
    if cfg is None:
        known = timm.list_models()
        raise CnnvizError(f"timm has no model {name!r}{closest(name, known)} (list them: timm.list_models())")
    return cfg


def timm_config(name: str, num_classes: int | None) -> ModelConfig:
    cfg = _timm_cfg(name)
    side = cfg.input_size[-1]
    crop = cfg.crop_pct or 0.875
    return ModelConfig(input_size=side, resize_size=max(side, int(side / crop)), mean=tuple(cfg.mean),
                       std=tuple(cfg.std), num_classes=num_classes or cfg.num_classes or None,
                       fixed_input=bool(cfg.fixed_input_size), source=f"timm:{name}")


def _timm_cached_file(cfg: Any) -> Path | None:
    """The pretrained file of a timm config in the local Hugging Face or torch hub cache, if there."""
    if cfg.hf_hub_id:
        from huggingface_hub import constants, try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id.split("@")[0], filename, cache_dir=constants.HF_HUB_CACHE)
            if isinstance(found, str):
                return Path(found)
    if cfg.url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / cfg.url.rsplit("/", 1)[-1]
        if path.is_file():
            return path
    return None


def build_timm(name: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]) -> ModelHandle:
    timm = _timm()
    cfg = _timm_cfg(name)
    config = timm_config(name, num_classes)
    args = dict(model_args)
    if num_classes is not None:
        args["num_classes"] = num_classes
    if weights == "pretrained":
        path = _timm_cached_file(cfg)
        if path is None:
            raise CnnvizError(f"the pretrained weights of timm:{name} are not in the local cache "
                              f"({cfg.hf_hub_id or cfg.url}): download them where there is network, "
                              "or pass --weights PATH (--weights random for random weights)")
        module = call_factory(lambda **kw: timm.create_model(name, pretrained=True,
                                                      pretrained_cfg_overlay={"file": str(path)}, **kw),
                       args, f"timm:{name}")
    else:
        state = read_checkpoint(weights) if weights is not None else None
        module = call_factory(lambda **kw: timm.create_model(name, pretrained=False, **kw), args, f"timm:{name}")
        module = fill_state(module, state, num_classes, f"timm:{name}",
                       lambda n: timm.create_model(name, pretrained=False, **{**args, "num_classes": n}))
    info = getattr(module, "feature_info", None)
    layer = info[-1]["module"] if info else guess_cam_layer(module)
    config = matched_config(config.replace(default_layer=layer), module)
    if cfg.num_classes == 1000 and config.num_classes == 1000:  # timm's 1000-class heads are ImageNet-1k's, in order
        config = config.replace(classes=tuple(IMAGENET_CLASSES))
    return ModelHandle(module.eval(), name=name, config=config)
