"""Command-line flags generated from the options of registered methods.

A method's keyword-only parameters become flags: their type comes from the
annotation (``Literal`` gives choices), their help from the method's
docstring ``Args:`` section. Add an option to a method and it appears in
the CLI; no hand-kept list.
"""

from __future__ import annotations

import argparse
import inspect
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from cnnviz.interpret import Method
from cnnviz.zoo.core import argparse_type, declared

SKIP = {"layer"}


def _docstring_args(fn: Any) -> dict[str, str]:
    doc = inspect.getdoc(fn) or ""
    match = re.search(r"Args:\n(.*?)(\n\S|\Z)", doc, re.S)
    found: dict[str, str] = {}
    if not match:
        return found
    current = None
    for line in match.group(1).splitlines():
        head = re.match(r"\s{4}(\w+)(?:,\s*\w+)*:\s*(.*)", line)
        if head:
            current = head.group(1)
            found[current] = head.group(2)
        elif current and line.strip():
            found[current] += " " + line.strip()
    return found


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> int; ``Literal[...]`` kept; others as they are."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def add_method_options(parser: argparse.ArgumentParser, methods: Sequence[Method], *,
                       skip: Sequence[str] = ()) -> None:
    """Add one flag per option name across ``methods`` (defaults stay the methods' own).

    ``skip`` names options the command sets itself.
    """
    seen: dict[str, list[str]] = {}
    params: dict[str, tuple[inspect.Parameter, str]] = {}
    for m in methods:
        signature = inspect.signature(m.fn, eval_str=True)
        docs = _docstring_args(m.fn)
        for name, p in signature.parameters.items():
            if p.kind is not inspect.Parameter.KEYWORD_ONLY or name in SKIP or name in skip:
                continue
            seen.setdefault(name, []).append(m.name)
            params.setdefault(name, (p, docs.get(name, "")))
    group = parser.add_argument_group("method options (each method uses the ones it has)")
    for name, (p, doc) in params.items():
        flag = "--" + name.replace("_", "-")
        users = "all" if len(seen[name]) == len(methods) else ", ".join(seen[name])
        kind = _base_type(p.annotation)
        text = f"{doc} [{users}; default {p.default}]".strip()
        checked = declared(p.annotation)
        if checked is not None:
            group.add_argument(flag, dest=f"opt_{name}", type=argparse_type(*checked, name), default=None,
                               metavar=name.upper(), help=text)
        elif kind is bool:
            group.add_argument(flag, dest=f"opt_{name}", action=argparse.BooleanOptionalAction, default=None,
                               help=text)
        elif typing.get_origin(kind) is typing.Literal:
            group.add_argument(flag, dest=f"opt_{name}", choices=typing.get_args(kind), default=None, help=text)
        else:
            group.add_argument(flag, dest=f"opt_{name}", type=kind if kind in (int, float) else str,
                               default=None, metavar=name.upper(), help=text)


def method_kwargs(args: argparse.Namespace, method: Method) -> dict[str, Any]:
    """The options given on the command line that ``method`` takes."""
    accepted = inspect.signature(method.fn).parameters
    return {name[len("opt_"):]: value for name, value in vars(args).items()
            if name.startswith("opt_") and value is not None and name[len("opt_"):] in accepted}
