"""Where a model comes from: one string names it, for ``--model`` and ``zoo.load`` alike.

=====================================  =====================================================  ============
source                                  weights                                                layer hooks
=====================================  =====================================================  ============
``efficientnet_lite0`` (a zoo name)     shipped, torch hub cache, or ``weights=PATH``          yes
``torchvision:NAME``                    ``weights=PATH`` or torchvision's local cache          yes
``timm:NAME``                           ``weights=PATH`` or the local Hugging Face/timm cache  yes
``path/to/file.py:FACTORY``             what the factory builds, or ``weights=PATH``           yes
``model.pt`` saved by ``torch.jit``     inside the file (TorchScript)                          no
``model.pt2`` saved by ``torch.export`` inside the file (exported program, unflattened)        yes
``runs/NAME/`` of ``cnnviz train``      the run's ``NAME.pt``; its log gives the architecture  yes
=====================================  =====================================================  ============

``weights="pretrained"`` (the default) takes the weights each source names above and fails with
a clear message naming the file it looked for when they are absent; nothing is ever downloaded.
``weights=None`` (``--weights random``) builds random weights. Methods that need a named layer
(CAM, feature maps, inversion, DeepDream, the atlas) need hooks; input methods (occlusion,
gradients, integrated gradients, SmoothGrad, attacks, RISE) run on every source.

A user file may hold a module-level ``CNNVIZ_CONFIG = {"input_size": 32, "mean": [...], ...}``
(fields of :class:`~zoo.config.ModelConfig`); TorchScript and exported programs may carry the
same JSON as the extra file ``cnnviz_config.json``. Arguments given to :func:`load` override both.

Example:
    >>> handle = load("torchvision:resnet18", weights=None, num_classes=10, input_size=64)
    >>> handle.config.num_classes, handle.default_layer, handle.config.source
    (10, 'layer4', 'torchvision:resnet18')
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import inspect
import json
import logging
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnviz.zoo.config import ModelConfig
from cnnviz.zoo.dense import build_dense, dense_config, dense_task
from cnnviz.zoo.device import pick_device
from cnnviz.zoo.errors import CnnvizError, closest
from cnnviz.zoo.handle import CompileMode, ModelHandle, Precision
from cnnviz.zoo.layers import guess_cam_layer
from cnnviz.zoo.outputs import OutputSelector
from cnnviz.zoo.registry import entry, names
from cnnviz.zoo.weights import classifier, implied_num_classes, load_weights, read_checkpoint

CONFIG_FILE = "cnnviz_config.json"
Weights = str | Path | None


def load(source: str, device: str | torch.device | None = None, weights: Weights = "pretrained", *,
         num_classes: int | None = None, classes: Sequence[str] | str | Path | None = None,
         input_size: int | None = None, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
         layer: str | None = None, model_args: Mapping[str, Any] | None = None,
         output: OutputSelector = None, precision: Precision = "fp32",
         compile: CompileMode = "auto") -> ModelHandle:
    """Build the model ``source`` names, in eval mode on ``device``, with its configuration.

    Args:
        source: a zoo name, ``torchvision:NAME``, ``timm:NAME``, ``file.py:FACTORY``, a TorchScript
            or ``.pt2`` file, or a ``cnnviz train`` output folder (see the module docstring).
        device: ``"cpu"``, ``"cuda"``, ... or None for the best available.
        weights: ``"pretrained"`` (the source's own, never downloaded), a checkpoint path, or
            None for random weights.
        num_classes: size of the classifier (default: the source's, or what the checkpoint implies).
        classes: class names, or a file of them (one a line, or a JSON list).
        input_size, mean, std, layer: override the source's configuration (``layer`` is the
            default CAM layer).
        model_args: keyword arguments for a ``file.py:FACTORY`` (``--model-args`` JSON).
        output: where the logits are in the model's output (see :func:`zoo.outputs.select_logits`).
        precision: ``fp32`` (default), or opt-in ``bf16`` / ``fp16`` autocast (see ``ModelHandle.precision``).
        compile: ``auto`` (default), ``on`` or ``off``: a compiled forward for forward-only methods
            (see ``ModelHandle.compile_mode`` and :mod:`zoo.compiled`).

    Example:
        >>> load("efficientnet_lite0", device="cpu").classes[967]
        'espresso'
    """
    if not isinstance(source, str) or not source.strip():
        raise CnnvizError(f"a model is named by a string (see cnnviz models --help), got {source!r}")
    names_list = read_classes(classes) if isinstance(classes, (str, Path)) else classes
    if names_list is not None and num_classes is None:
        num_classes = len(names_list)
    kind, name = parse_source(source)
    handle = _BUILDERS[kind](name, weights, num_classes=num_classes, model_args=dict(model_args or {}))
    if input_size is not None and handle.config.fixed_input and input_size != handle.input_size:
        raise CnnvizError(f"{source} takes only {handle.input_size} px inputs (its input size is fixed): "
                          "drop --input-size")
    handle.config = handle.config.replace(
        classes=tuple(names_list) if names_list is not None else None, input_size=input_size,
        mean=tuple(mean) if mean is not None else None, std=tuple(std) if std is not None else None,
        default_layer=layer)
    if mean is not None or std is not None:
        _check_channels(handle)
    if output is not None:
        handle.output = output
    handle = handle.to(pick_device(device)).eval()
    handle.precision = precision
    handle.compile_mode = compile
    return handle


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Only errors of ``logger`` reach the terminal inside the block: ours is the one line the user reads."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _check_channels(handle: ModelHandle) -> None:
    """A normalization given by the user has one value per channel that the first convolution takes (read off
    its weights; a model's own configuration is trusted, since its first layer may not be a convolution)."""
    first = next(((name, m) for name, m in handle.model.named_modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or first[1].in_channels == handle.in_channels:
        return
    name, conv = first
    raise CnnvizError(f"the normalization (--mean/--std, mean=/std=) has {handle.in_channels} value(s) but "
                      f"{handle.name}'s first convolution {name!r} takes {conv.in_channels} channels: give "
                      f"{conv.in_channels} values, one per channel (e.g. --mean {','.join(['0.5'] * conv.in_channels)})")


def parse_source(source: str) -> tuple[str, str]:
    """``(kind, name)`` of a model source string; unknown names get the closest zoo names."""
    for prefix in ("torchvision", "timm"):
        if source.startswith(prefix + ":"):
            return prefix, source[len(prefix) + 1:]
    if ".py:" in source:
        return "file", source
    path = Path(source)
    if source in names():
        return "zoo", source
    if path.is_dir():
        return "run", source
    if path.exists():
        if not path.is_file():
            raise CnnvizError(f"{source} is not a regular file: give a model file or folder")
        return _saved_kind(path), source
    if source.endswith((".pt", ".pth", ".pt2", ".ts", ".py")) or "/" in source:
        raise CnnvizError(f"no model file at {source}: check the path (a Python file is named as file.py:FACTORY)")
    raise CnnvizError(f"unknown model {source!r}{closest(source, names())}; a model is a zoo name "
                      "(cnnviz models), torchvision:NAME, timm:NAME, file.py:FACTORY, a TorchScript or .pt2 "
                      "file, or a cnnviz train folder")


def _saved_kind(path: Path) -> str:
    if path.suffix == ".pt2":
        return "export"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = archive.namelist()
        if any("/code/" in e for e in entries) and any(e.endswith("constants.pkl") for e in entries):
            return "torchscript"
        if any(e.endswith("archive_format") or "/models/" in e for e in entries):
            return "export"
    raise CnnvizError(f"{path} is not a saved whole model (TorchScript or torch.export .pt2); a state dict "
                      "goes with the architecture: --model torchvision:NAME|timm:NAME|file.py:FACTORY "
                      f"--weights {path}")


def read_classes(path: str | Path) -> list[str]:
    """Class names from a file: a JSON list (or ``{"classes": [...]}``), or one name a line.

    Example:
        >>> import tempfile
        >>> f = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False)
        >>> _ = f.write("cat\\ndog\\n"); f.close()
        >>> read_classes(f.name)
        ['cat', 'dog']
    """
    path = Path(path)
    if not path.is_file():
        raise CnnvizError(f"no classes file at {path}: give a text file with one class name a line, or a JSON list")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CnnvizError(f"cannot read the classes file {path}: {exc}") from None
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise CnnvizError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict):
            data = data.get("classes")
        if not isinstance(data, list) or not all(isinstance(c, str) for c in data):
            raise CnnvizError(f"{path} must hold a JSON list of class names")
        names_list = [c.strip() for c in data]
    else:
        names_list = [line.strip() for line in text.splitlines() if line.strip()]
    if not names_list:
        raise CnnvizError(f"the classes file {path} is empty: one class name a line")
    return names_list


def model_config(source: str, **overrides: Any) -> ModelConfig:
    """The configuration ``source`` would have, read without building the network where the source allows.

    Zoo entries, ``torchvision:``, ``timm:`` and ``cnnviz train`` folders say theirs without building;
    a user file or a saved program is opened to read it.

    Example:
        >>> model_config("torchvision:vit_b_16").fixed_input
        True
    """
    kind, name = parse_source(source)
    if kind == "zoo" and entry(name).config is not None:
        config = entry(name).config()  # type: ignore[misc]
    elif kind == "torchvision" and dense_task(name):
        config = dense_config(name)
    elif kind == "torchvision":
        config = _torchvision_config(name, None)
    elif kind == "timm":
        config = _timm_config(name, None)
    else:
        config = load(source, device="cpu", weights=None).config  # built with random weights: only the config is read
    return config.replace(**overrides)


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


def _torchvision_config(name: str, num_classes: int | None) -> ModelConfig:
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


def _build_torchvision(name: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                       ) -> ModelHandle:
    import torchvision

    if dense_task(name):
        return build_dense(name, weights, num_classes=num_classes, model_args=model_args)
    config = _torchvision_config(name, num_classes)
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
    module = _call(lambda **kw: torchvision.models.get_model(name, weights=None, **kw), args, f"torchvision:{name}")
    module = _fill(module, state, num_classes, f"torchvision:{name}",
                   lambda n: torchvision.models.get_model(name, weights=None, **{**args, "num_classes": n}))
    config = _matched(config.replace(default_layer=_torchvision_layer(name, module)), module)
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


def _timm_config(name: str, num_classes: int | None) -> ModelConfig:
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


def _build_timm(name: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]) -> ModelHandle:
    timm = _timm()
    cfg = _timm_cfg(name)
    config = _timm_config(name, num_classes)
    args = dict(model_args)
    if num_classes is not None:
        args["num_classes"] = num_classes
    if weights == "pretrained":
        path = _timm_cached_file(cfg)
        if path is None:
            raise CnnvizError(f"the pretrained weights of timm:{name} are not in the local cache "
                              f"({cfg.hf_hub_id or cfg.url}): download them where there is network, "
                              "or pass --weights PATH (--weights random for random weights)")
        module = _call(lambda **kw: timm.create_model(name, pretrained=True,
                                                      pretrained_cfg_overlay={"file": str(path)}, **kw),
                       args, f"timm:{name}")
    else:
        state = read_checkpoint(weights) if weights is not None else None
        module = _call(lambda **kw: timm.create_model(name, pretrained=False, **kw), args, f"timm:{name}")
        module = _fill(module, state, num_classes, f"timm:{name}",
                       lambda n: timm.create_model(name, pretrained=False, **{**args, "num_classes": n}))
    info = getattr(module, "feature_info", None)
    config = _matched(config.replace(default_layer=info[-1]["module"] if info else guess_cam_layer(module)), module)
    if cfg.num_classes == 1000 and config.num_classes == 1000:
        from cnnviz.zoo.imagenet import IMAGENET_CLASSES  # timm's 1000-class heads are ImageNet-1k's, in its order

        config = config.replace(classes=tuple(IMAGENET_CLASSES))
    return ModelHandle(module.eval(), name=name, config=config)


# --- a user's Python file ------------------------------------------------------------------------------------

def _build_file(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                ) -> ModelHandle:
    file_part, _, factory_name = source.rpartition(":")
    path = Path(file_part)
    if not path.is_file():
        raise CnnvizError(f"no Python file at {path}: give file.py:FACTORY with an existing file")
    module_file = _import_file(path)
    factory = getattr(module_file, factory_name, None)
    if factory is None or not callable(factory):
        candidates = [n for n, v in vars(module_file).items() if callable(v) and not n.startswith("_")]
        raise CnnvizError(f"{path} has no function or class {factory_name!r}{closest(factory_name, candidates)}")
    args = dict(model_args)
    if num_classes is not None and "num_classes" in _parameters(factory):
        args.setdefault("num_classes", num_classes)
    built = _call(factory, args, source)
    file_config = getattr(module_file, "CNNVIZ_CONFIG", None) or {}
    if isinstance(built, ModelHandle):
        handle = built
    elif isinstance(built, nn.Module):
        handle = ModelHandle(built, name=factory_name, config=_config_from(file_config, built, source))
    else:
        raise CnnvizError(f"{source} returned a {type(built).__name__}, not a torch.nn.Module")
    if weights not in (None, "pretrained"):
        load_weights(handle.model, weights, what=source)
    return handle


def _import_file(path: Path) -> Any:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]
    module_name = f"cnnviz_user_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CnnvizError(f"cannot import {path}: is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # the user's file may import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code may raise anything
        raise CnnvizError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    finally:
        sys.path.remove(folder)
    sys.modules[module_name] = module
    return module


def _parameters(fn: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return set()


def _config_from(data: Mapping[str, Any], module: nn.Module, source: str) -> ModelConfig:
    if not isinstance(data, Mapping):
        raise CnnvizError(f"the CNNVIZ_CONFIG of {source} must be a dict of ModelConfig fields")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(data) - known
    if unknown:
        raise CnnvizError(f"unknown field(s) {', '.join(sorted(unknown))} in the configuration of {source}; "
                          f"known: {', '.join(sorted(known))}")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    if "mean" not in fields:
        channels = next((m.in_channels for m in module.modules() if isinstance(m, nn.Conv2d)), 3)
        fields["mean"] = (0.0,) * channels
        fields.setdefault("std", (1.0,) * channels)
    if "default_layer" not in fields:
        fields["default_layer"] = guess_cam_layer(module)
    fields["source"] = source
    config = ModelConfig(**fields)
    return config if config.classes is not None else _sized(config, module)


# --- saved programs ------------------------------------------------------------------------------------------

def _build_torchscript(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                       ) -> ModelHandle:
    _no_weights(source, weights)
    extra = {CONFIG_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch 2.14 calls TorchScript deprecated; a user's file still loads
            warnings.filterwarnings("ignore", message=".*torch.jit.load. is deprecated", category=FutureWarning)
            module = torch.jit.load(source, map_location="cpu", _extra_files=extra)
    except Exception as exc:  # torch raises many types for a bad archive
        raise CnnvizError(f"cannot load the TorchScript file {source}: {str(exc).strip()[:200]}") from None
    data = {**_extra_config(extra[CONFIG_FILE], source), "default_layer": None, "hookable": False}
    config = _config_from(data, module, source)
    return ModelHandle(module.eval(), name=Path(source).stem, config=config)


def _build_export(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
                  ) -> ModelHandle:
    _no_weights(source, weights)
    extra = {CONFIG_FILE: ""}
    try:
        with _quiet("torch.export"):  # on a bad archive torch logs a traceback before it raises or gives up
            program = torch.export.load(source, extra_files=extra)
    except Exception as exc:  # torch raises many types for a bad archive
        why = ("torch could not deserialize it (not an archive torch.export.save wrote, or a damaged one)"
               if "deserializ" in str(exc) else str(exc).strip()[:200])
        raise CnnvizError(f"cannot load the exported program {source}: {why}") from None
    example = [node.meta.get("val") for node in program.graph.nodes if node.op == "placeholder"
               and node.name in program.graph_signature.user_inputs]
    if len(example) != 1 or example[0] is None or example[0].dim() != 4:
        raise CnnvizError(f"{source} must take one (B, C, H, W) image batch")
    shape = example[0].shape
    if not isinstance(shape[0], torch.SymInt):
        raise CnnvizError(f"{source} was exported for a fixed batch of {shape[0]}: export it with a dynamic "
                          "batch, torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim('batch')},))")
    module = torch.export.unflatten(program)  # keeps the layer hierarchy, so hooks and layer names work
    data = _extra_config(extra[CONFIG_FILE], source)
    fixed = not isinstance(shape[-1], torch.SymInt)
    if fixed:
        data.setdefault("input_size", int(shape[-1]))
        data.setdefault("resize_size", int(shape[-1]))
    data.setdefault("mean", [0.0] * int(shape[1]))
    data.setdefault("std", [1.0] * int(shape[1]))
    if fixed:
        data["fixed_input"] = True
    # train()/eval() only flip flags here: the graph keeps the mode it was exported in.
    return ModelHandle(module, name=Path(source).stem, config=_config_from(data, module, source))


def _extra_config(text: str | bytes, source: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise CnnvizError(f"the {CONFIG_FILE} inside {source} is not valid JSON") from None
    if not isinstance(data, dict):
        raise CnnvizError(f"the {CONFIG_FILE} inside {source} must be a JSON object")
    return data


def _no_weights(source: str, weights: Weights) -> None:
    if weights not in (None, "pretrained"):
        raise CnnvizError(f"{source} carries its own weights: drop --weights")


# --- a cnnviz train folder -----------------------------------------------------------------------------------

def _build_run(source: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]
               ) -> ModelHandle:
    from cnnviz.zoo.fashion import handle_from_log, read_training_log

    folder = Path(source)
    logs = sorted(folder.glob("*-log.json"))
    if not logs:
        raise CnnvizError(f"{folder} is not a cnnviz train folder: it holds no NAME-log.json")
    if len(logs) > 1:
        raise CnnvizError(f"{folder} holds {len(logs)} training logs ({', '.join(p.name for p in logs)}): "
                          "name the folder of one run")
    log_path = logs[0]
    run_name = log_path.name[:-len("-log.json")]
    checkpoint = folder / f"{run_name}.pt"
    if weights == "pretrained":
        if not checkpoint.is_file():
            raise CnnvizError(f"{folder} has the log of {run_name} but no weights {checkpoint.name}: "
                              "did the training finish?")
        weights = checkpoint
    handle = handle_from_log(read_training_log(log_path), weights, run_name)
    handle.config = dataclasses.replace(handle.config, source=str(folder), training_log=str(log_path))
    return handle


def _build_zoo(name: str, weights: Weights, *, num_classes: int | None, model_args: dict[str, Any]) -> ModelHandle:
    if model_args:
        raise CnnvizError(f"{name} takes no model arguments (they are for file.py:FACTORY models)")
    handle = entry(name).build(weights)
    if handle.config.source == "module":
        handle.config = dataclasses.replace(handle.config, source=f"zoo:{name}")
    if num_classes is not None and num_classes != handle.config.num_classes:
        raise CnnvizError(f"{name} has {handle.config.num_classes} classes; for another classifier use "
                          f"torchvision:NAME, timm:NAME or file.py:FACTORY with --num-classes {num_classes}")
    return handle


# --- shared --------------------------------------------------------------------------------------------------

def _call(factory: Callable[..., Any], args: dict[str, Any], source: str) -> Any:
    try:
        return factory(**args)
    except CnnvizError:
        raise
    except TypeError as exc:
        raise CnnvizError(f"{source} does not take these arguments {sorted(args)}: {exc}") from None
    except Exception as exc:  # a model's constructor may raise anything
        raise CnnvizError(f"building {source} failed: {type(exc).__name__}: {str(exc)[:200]}") from None


def _fill(module: nn.Module, state: dict[str, torch.Tensor] | None, num_classes: int | None, what: str,
          rebuild: Callable[[int], nn.Module]) -> nn.Module:
    """``module`` with ``state`` loaded; when no class count was asked for and only the classifier
    differs, rebuilt with the checkpoint's."""
    if state is None:
        return module
    classes = implied_num_classes(module, state) if num_classes is None else None
    head = module.state_dict()
    if classes is not None and any(k in head and head[k].shape != v.shape for k, v in state.items()):
        module = _call(lambda: rebuild(classes), {}, what)
    load_weights(module, state, what=what)
    return module


def _sized(config: ModelConfig, module: nn.Module) -> ModelConfig:
    """``config`` with ``num_classes`` read off the classifier when it is not known."""
    head = classifier(module)
    if config.num_classes is not None or head is None:
        return config
    return config.replace(num_classes=head[1].out_features)


def _matched(config: ModelConfig, module: nn.Module) -> ModelConfig:
    """``config`` agreeing with a library model's classifier (the checkpoint may have resized it)."""
    head = classifier(module)
    if head is None or config.num_classes == head[1].out_features:
        return config
    return dataclasses.replace(config, classes=None, num_classes=head[1].out_features)


_BUILDERS: dict[str, Callable[..., ModelHandle]] = {
    "zoo": _build_zoo, "torchvision": _build_torchvision, "timm": _build_timm, "file": _build_file,
    "torchscript": _build_torchscript, "export": _build_export, "run": _build_run,
}
