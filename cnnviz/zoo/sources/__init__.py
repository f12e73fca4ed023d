"""Where a model comes from (:func:`load`): a zoo name (the catalog), ``torchvision:NAME`` or ``timm:NAME``
(:mod:`.hub`), a user's ``file.py:FACTORY``, TorchScript or ``.pt2`` (:mod:`.programs`), a ``cnnviz train``
folder (:mod:`.runs`); class names from a file (:mod:`.classes`). The top floor of zoo: a plain name is
looked up in the catalog, the catalog needs nothing of this.

Example:
    >>> from cnnviz.zoo.sources import parse_source
    >>> parse_source("timm:resnet18"), parse_source("fashion_cnn")
    (('timm', 'resnet18'), ('zoo', 'fashion_cnn'))
"""

from cnnviz.zoo.sources.classes import read_classes
from cnnviz.zoo.sources.load import load, model_config, parse_source
from cnnviz.zoo.sources.programs import CONFIG_FILE

__all__ = ["CONFIG_FILE", "load", "model_config", "parse_source", "read_classes"]
