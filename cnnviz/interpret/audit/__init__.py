"""Audit a classifier over its data: where it fails, which strategies it uses per class, what it relies on.

``interpret.audit(handle, data, workdir=RUN_DIR)`` runs the whole audit and returns an :class:`Audit`; this
module is itself callable as that function, and holds the rest:

- :class:`AuditRun`: the same audit in bounded steps (``run.step()`` or ``for progress in run.steps()``), for a
  scheduler that runs work in rounds; a run folder resumes where a killed run stopped;
- :func:`load`: a finished run folder read back: ``audit.json`` as an :class:`Audit`, with ``audit.items``
  (each item's id, true and predicted class, confidence) and ``audit.maps`` (every item's map, memory-mapped);
- :mod:`.schema` documents ``audit.json``; :mod:`.predictions` the prediction summary; :mod:`.run` the run
  folder; :mod:`.data` which data an audit reads; :mod:`.strategies`, :mod:`.concepts` and :mod:`.flags` the
  analysis of each class.

Example:
    >>> import tempfile, torch
    >>> from cnnviz import zoo, interpret
    >>> handle = zoo.load("fashion_cnn", device="cpu")
    >>> workdir = tempfile.mkdtemp()
    >>> found = interpret.audit(handle, (torch.rand(12, 1, 28, 28), torch.arange(12) % 3), workdir=workdir,
    ...                         concepts=0)
    >>> interpret.audit.load(workdir).items.ids[:3] == found.items.ids[:3]
    True
"""

from __future__ import annotations

import sys
import types
from typing import Any

from cnnviz.interpret.audit.audit import (CHUNK, CONCEPTS, DEFAULT_METHOD, MAP_SIZE, AuditRun, Progress,
                                          audit, run_to_end)
from cnnviz.interpret.audit.data import AuditData, audit_data, class_matcher
from cnnviz.interpret.audit.predictions import expected_calibration_error, reliability, summarize
from cnnviz.interpret.audit.run import RunFolder
from cnnviz.interpret.audit.schema import AUDIT_FILE, ITEMS_FILE, SCHEMA, Audit, Items, load

__all__ = ["AUDIT_FILE", "ITEMS_FILE", "AuditData", "AuditRun", "Audit", "CHUNK", "CONCEPTS", "DEFAULT_METHOD", "Items", "MAP_SIZE", "Progress",
           "RunFolder", "SCHEMA", "audit", "audit_data", "class_matcher", "expected_calibration_error", "load",
           "reliability", "run_to_end", "summarize"]


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`audit`: ``interpret.audit(...)`` and ``interpret.audit.load(...)`` both
    read naturally."""

    def __call__(self, *args: Any, **kwargs: Any) -> Audit:
        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
