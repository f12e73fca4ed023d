"""Subcommands register themselves here; ``cnnviz`` builds its parser from the registry."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

Run = Callable[[argparse.Namespace], int | None]
Configure = Callable[[argparse.ArgumentParser], Run]


@dataclass(frozen=True)
class Command:
    """One ``cnnviz`` subcommand.

    Attributes:
        name: what users type after ``cnnviz``.
        help: one line for ``cnnviz --help``.
        description: the longer text of ``cnnviz NAME --help`` (examples welcome).
        configure: adds the arguments to the subparser and returns the function to run.
        order: position in ``cnnviz --help``.
    """

    name: str
    help: str
    description: str
    configure: Configure
    order: int


_COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, description: str = "", order: int = 50) -> Callable[[Configure], Configure]:
    """Decorator registering ``configure(parser) -> run`` as ``cnnviz NAME``."""

    def decorate(configure: Configure) -> Configure:
        if name in _COMMANDS:
            raise RuntimeError(f"command {name!r} registered twice")
        _COMMANDS[name] = Command(name, help, description or help, configure, order)
        return configure

    return decorate


def commands() -> list[Command]:
    """Registered commands in display order."""
    return sorted(_COMMANDS.values(), key=lambda c: (c.order, c.name))
