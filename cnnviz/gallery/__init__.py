"""The static HTML gallery (``cnnviz gallery``): every method of cnnviz on the models and photos that ship.

The gallery is a list of cards (:mod:`gallery.cards`): each is one method
with its parameters on one page, computed by the public API (``zoo``,
``interpret``) by the section modules (:mod:`gallery.plan` lists them), drawn by
:mod:`interpret.views.sheets`, and saved as PNGs plus a JSON
under ``OUT/cards/``. Finished cards are skipped by the next build, so a
build can be interrupted and resumed; the HTML (:mod:`gallery.site`) is
rewritten from the card JSONs at the end of every build, interrupted or not.

Example:
    >>> from cnnviz.gallery import Settings, build
    >>> report = build("gallery-out", Settings(quick=True))  # doctest: +SKIP
    >>> len(report.failed)  # doctest: +SKIP
    0
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cnnviz.gallery.cards import BuildReport, Card, Output, Page, run_cards, slug
from cnnviz.gallery.plan import Plan, plan
from cnnviz.gallery.settings import FULL, QUICK, Budget, Settings, with_budget
from cnnviz.gallery.site import read_manifest, update_manifest, write_site
from cnnviz.zoo.core import CnnvizError

__all__ = ["FULL", "QUICK", "Budget", "BuildReport", "Card", "Output", "Page", "Plan", "Settings", "build", "plan",
           "slug", "with_budget"]


def build(out: str | Path, settings: Settings | None = None, *, progress: bool = True,
          log: Callable[[str], None] = print) -> BuildReport:
    """Build (or complete) the gallery in ``out``: compute the unfinished cards, then write the HTML.

    Nothing is written outside ``out``. The HTML is written even when the
    build is interrupted, showing the cards finished so far.

    Returns:
        What was computed, skipped and failed.
    """
    settings = settings or Settings()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CnnvizError(f"{out} is a file: give a folder for the gallery")
    the_plan = plan(settings)  # checks models and images before anything is written
    out.mkdir(parents=True, exist_ok=True)
    update_manifest(out, the_plan.pages, the_plan.cards, settings.describe())
    report = BuildReport()
    try:
        report = run_cards(out, the_plan.cards, progress=progress, log=log)
    finally:
        write_site(out, read_manifest(out), report.failed)
    return report
