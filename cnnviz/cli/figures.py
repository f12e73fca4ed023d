"""The ``--format`` option of commands that write charts (PNG for screens, SVG or PDF for papers)."""

from __future__ import annotations

import argparse

from cnnviz.interpret.views import FORMATS


def add_chart_format(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--format png|svg|pdf`` (default png) for the charts a command writes.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_chart_format(parser)
        >>> parser.parse_args(["--format", "svg"]).format
        'svg'
    """
    parser.add_argument("--format", choices=FORMATS, default="png",
                        help="file format of the charts: png, or svg / pdf as vector graphics (default: png)")
