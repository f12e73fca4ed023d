"""Command-line flags generated from the described options of registered methods and of functions
(:meth:`interpret.Method.options`, :func:`interpret.core.option_specs`).

A method's keyword-only parameters become flags: their type and range come from the annotation (``Literal``
gives choices), their help from the docstring's ``Args:`` section. Add an option to a method and it appears in
the CLI; no hand-kept list.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from cnnviz.interpret import Method, OptionSpec
from cnnviz.interpret.core import option_specs
from cnnviz.zoo.core import argparse_type

SKIP = {"layer"}


def add_flag(group: Any, flag: str, spec: OptionSpec, text: str, *, dest: str, default: Any = None,
             metavar: str | None = None, parse: Callable[[str], Any] | None = None) -> None:
    """One flag for ``spec`` on ``group``: its declared range checked, a bool as ``--x/--no-x``, choices from a
    ``Literal``, else an int, float or string (``parse`` reads the text where the type alone cannot)."""
    metavar = metavar or spec.name.upper()
    if spec.bounds is not None:
        group.add_argument(flag, dest=dest, type=argparse_type(spec.type, spec.bounds, spec.name, parse),
                           default=default, metavar=metavar, help=text)
    elif spec.type is bool:
        group.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=text)
    elif spec.choices is not None:
        group.add_argument(flag, dest=dest, choices=spec.choices, default=default, help=text)
    else:
        group.add_argument(flag, dest=dest, type=parse or (spec.type if spec.type in (int, float) else str),
                           default=default, metavar=metavar, help=text)


def add_method_options(parser: argparse.ArgumentParser, methods: Sequence[Method], *,
                       skip: Sequence[str] = ()) -> None:
    """Add one flag per option name across ``methods`` (defaults stay the methods' own).

    ``skip`` names options the command sets itself.
    """
    seen: dict[str, list[str]] = {}
    specs: dict[str, OptionSpec] = {}
    for m in methods:
        for name, spec in m.options().items():
            if name in SKIP or name in skip:
                continue
            seen.setdefault(name, []).append(m.name)
            specs.setdefault(name, spec)
    group = parser.add_argument_group("method options (each method uses the ones it has)")
    for name, spec in specs.items():
        users = "all" if len(seen[name]) == len(methods) else ", ".join(seen[name])
        add_flag(group, "--" + name.replace("_", "-"), spec, f"{spec.help} [{users}; default {spec.default}]".strip(),
                 dest=f"opt_{name}")


def add_function_options(parser: Any, fn: Callable[..., Any], names: Sequence[str], *,
                         metavars: dict[str, str] | None = None,
                         parse: dict[str, Callable[[str], Any]] | None = None,
                         defaults: dict[str, str] | None = None) -> None:
    """Flags ``--name`` (``dest`` the option's name) for options ``names`` of ``fn``, defaults its signature's:
    the help is the docstring's line and the default (``defaults`` words a default the value cannot say, such
    as "what fits the device" for None), so no value is copied by hand."""
    specs = option_specs(fn, skip=())
    for name in names:
        spec = specs[name]
        shown = (defaults or {}).get(name, spec.default)
        text = spec.help.replace("``", "").rstrip(".")
        add_flag(parser, "--" + name.replace("_", "-"), spec,
                 text if "(default" in text else f"{text} (default: {shown})", dest=name,
                 default=spec.default if spec.default is not inspect.Parameter.empty else None,
                 metavar=(metavars or {}).get(name), parse=(parse or {}).get(name))


def method_kwargs(args: argparse.Namespace, method: Method) -> dict[str, Any]:
    """The options given on the command line that ``method`` takes."""
    accepted = inspect.signature(method.fn).parameters
    return {name[len("opt_"):]: value for name, value in vars(args).items()
            if name.startswith("opt_") and value is not None and name[len("opt_"):] in accepted}
