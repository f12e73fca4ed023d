"""The one error type users see: a mistake in their input, told in one line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnvizError(ValueError):
    """Bad input: the message says what was wrong and what to do.

    The CLI prints it as one line and exits with code 2; library callers can
    catch it like any ``ValueError``.
    """


CnnvizError.__module__ = "cnnviz"  # users meet it as cnnviz.CnnvizError, wherever zoo keeps it


def closest(word: str, choices: Iterable[str], n: int = 3) -> str:
    """A 'did you mean ...' phrase for ``word`` among ``choices`` (or '')."""
    choices = list(choices)
    matches = difflib.get_close_matches(word, choices, n=n, cutoff=0.5)
    if not matches:
        lowered = word.lower()
        matches = [c for c in choices if lowered in c.lower()][:n]
    return f"; did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
