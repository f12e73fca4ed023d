"""``cnnviz``: the entry point. Subcommands come from the command registry."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import pkgutil
import sys
import warnings
from collections.abc import Callable
from typing import Any, NoReturn

import cnnviz.cli.commands
from cnnviz.cli.registry import commands
from cnnviz.zoo.core import CnnvizError

EXAMPLES = """\
examples:
  cnnviz predict --image chelsea                      top-5 ImageNet classes of the cat photo
  cnnviz models                                       the models in the zoo
  cnnviz layers efficientnet_lite0                    layer names, output shapes and parameters
  cnnviz COMMAND --help                               what each command takes
"""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2) that point to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _import_commands() -> None:
    for info in pkgutil.iter_modules(cnnviz.cli.commands.__path__):
        importlib.import_module(f"cnnviz.cli.commands.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    """The full ``cnnviz`` parser, one subparser per registered command."""
    _import_commands()
    parser = Parser(prog="cnnviz", description="See inside convolutional networks.", epilog=EXAMPLES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    for cmd in commands():
        sub = subparsers.add_parser(cmd.name, help=cmd.help.replace("%", "%%"), description=cmd.description,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=cmd.configure(sub))
    return parser


def _one_line_warning(command: str) -> Callable[..., None]:
    """A warning as one line on stderr (``cnnviz COMMAND: warning: ...``), not Python's file, line and source."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        print(f"cnnviz {command}: warning: {message}", file=sys.stderr)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run ``cnnviz`` with ``argv``; returns the exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # A compile (--compile) on a machine without CUDA logs that torch found no CUDA runtime: true, and noise here.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return int(args.run(args) or 0)
    except CnnvizError as exc:
        print(f"cnnviz {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        print(f"cnnviz {args.command}: error: {exc.strerror or exc}: {exc.filename} "
              "(choose another --out or fix its permissions)", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        print(f"cnnviz {args.command}: error: {exc.strerror}: {exc.filename or 'the output folder'} "
              "(free space or choose another --out)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnviz {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
