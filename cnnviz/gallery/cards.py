"""Cards and the incremental builder.

A card is one thing shown in the gallery: a method run with its parameters,
on one page. Its ``compute`` returns images and numbers; the builder saves
them as PNGs plus a small JSON (title, method, parameters, seconds, scores)
under ``OUT/cards/PAGE/``, every file written atomically and the JSON last.
A card whose JSON exists with the same key (method and parameters) is
finished: a second build skips it, and an interrupted build keeps every card
it finished.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cnnviz.zoo import save_image
from cnnviz.zoo.core import CnnvizError, write_json

CARDS_DIR = "cards"
MANIFEST = "gallery.json"
FORMAT = 2  # bump when the card JSON or the drawing changes: old cards are then recomputed


@dataclass
class Output:
    """What a card's ``compute`` returns.

    Attributes:
        images: ``(label, uint8 (H, W, 3) array)`` pairs, shown in order.
        scores: numbers or short texts shown in a table (AUCs, confidences, ...).
        note: one sentence under the images (what to look at).
    """

    images: list[tuple[str, np.ndarray]] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Page:
    """A page of the gallery.

    Attributes:
        slug: file-safe name (see :func:`slug`); the page is ``OUT/SLUG.html``.
        title: shown in the navigation and heading (any text: it is escaped).
        kind: ``image``, ``model``, ``training`` or ``attacks``: groups pages on the index.
        intro: a paragraph under the heading.
        strip: a section whose cards are also shown in one row at the top, each by its last
            image and its scores (the attribution methods side by side).
    """

    slug: str
    title: str
    kind: str
    intro: str = ""
    strip: str = ""


@dataclass(frozen=True)
class Card:
    """One card: where it goes, what it shows, and how to compute it.

    Attributes:
        page: the page's slug.
        id: unique within the page, file-safe (see :func:`slug`).
        title: the card's heading (any text).
        method: the method's name (a registry name where there is one).
        params: the parameters, JSON-ready; with ``method`` they make the card's key.
        compute: returns the card's :class:`Output`.
        section: heading of the group of cards it belongs to on the page.
    """

    page: str
    id: str
    title: str
    method: str
    params: dict[str, Any]
    compute: Callable[[], Output]
    section: str = ""

    @property
    def key(self) -> str:
        """A digest of method, parameters and card format: a card with another key is recomputed."""
        text = json.dumps({"format": FORMAT, "method": self.method, "params": self.params}, sort_keys=True,
                          default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def slug(text: str) -> str:
    """A file-safe, lower-case name for ``text``; names that had to change get a short digest, so two
    different texts never share a slug.

    This is the one place that does not use :func:`zoo.safe_name`: a slug names a page and its URL, so it
    must be lower case, hold no ``.``, ``+`` or ``@`` that a URL reads specially, and never let two names
    collide (``safe_name`` keeps a name readable and may map two names to one file, which the CLI's numbering
    resolves).

    Example:
        >>> slug("chelsea"), slug("<b>cat</b>.png")
        ('chelsea', 'b-cat-b-png-432504')
    """
    clean = re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-")[:60] or "x"
    if clean == text:
        return clean
    return f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def inside(root: Path, path: Path) -> Path:
    """``path``, after checking it lies under ``root`` (nothing is written outside the output folder)."""
    resolved_root, resolved = root.resolve(), path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise CnnvizError(f"refusing to write {path}: it is outside the gallery folder {root}")
    return path


def card_dir(out: Path, page: str) -> Path:
    """``OUT/cards/PAGE``."""
    return inside(out, out / CARDS_DIR / page)


def read_card(out: Path, page: str, card_id: str) -> dict[str, Any] | None:
    """The stored JSON of a finished card, or None (missing or unreadable)."""
    path = card_dir(out, page) / f"{card_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_finished(out: Path, card: Card) -> bool:
    """Whether the card's JSON exists with the same key and every PNG it names is there."""
    data = read_card(out, card.page, card.id)
    if data is None or data.get("key") != card.key:
        return False
    folder = card_dir(out, card.page)
    return all((folder / image.get("file", "")).is_file() for image in data.get("images", []))


def save_card(out: Path, card: Card, output: Output, seconds: float) -> dict[str, Any]:
    """Write the card's PNGs, then its JSON (last, so a JSON always means a complete card)."""
    folder = card_dir(out, card.page)
    images = []
    for n, (label, image) in enumerate(output.images):
        if image.dtype != np.uint8 or image.ndim != 3:
            raise CnnvizError(f"card {card.page}/{card.id}: image {n} must be uint8 (H, W, 3), "
                              f"got {image.dtype} {image.shape}")
        name = f"{card.id}-{n}.png"
        save_image(inside(out, folder / name), image)
        images.append({"file": name, "label": label, "width": int(image.shape[1]), "height": int(image.shape[0])})
    data = {"format": FORMAT, "key": card.key, "page": card.page, "id": card.id, "title": card.title,
            "section": card.section, "method": card.method, "params": card.params, "seconds": round(seconds, 3),
            "images": images, "scores": output.scores, "note": output.note}
    write_json(inside(out, folder / f"{card.id}.json"), data)
    return data


@dataclass
class BuildReport:
    """What a build did: cards computed, skipped (already finished) and failed (with the reason)."""

    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def run_cards(out: Path, cards: Sequence[Card], *, progress: bool = True,
              log: Callable[[str], None] = print) -> BuildReport:
    """Compute every card not yet finished, in order, saving each as soon as it is done.

    A card that raises is reported and left unfinished (the next build tries
    it again); the others go on. ``KeyboardInterrupt`` stops the build and
    keeps every card finished so far.
    """
    seen: set[tuple[str, str]] = set()
    for card in cards:
        if (card.page, card.id) in seen:
            raise CnnvizError(f"two cards named {card.page}/{card.id}: card ids must be unique on a page")
        seen.add((card.page, card.id))
    report = BuildReport()
    began = time.perf_counter()
    todo = [c for c in cards if not is_finished(out, c)]
    report.skipped = [f"{c.page}/{c.id}" for c in cards if c not in todo]
    bar = tqdm(todo, desc="gallery", unit="card", disable=not progress)
    for card in bar:
        name = f"{card.page}/{card.id}"
        bar.set_postfix_str(name[-40:])
        start = time.perf_counter()
        try:
            output = card.compute()
        except (CnnvizError, RuntimeError, ValueError) as exc:
            report.failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log(f"gallery: card {name} failed ({report.failed[name]}); the others go on")
            continue
        save_card(out, card, output, time.perf_counter() - start)
        report.computed.append(name)
    bar.close()
    report.seconds = time.perf_counter() - began
    return report
