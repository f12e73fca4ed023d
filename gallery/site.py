"""The HTML: an index and one page per :class:`~gallery.cards.Page`, written from the card JSONs.

Every text that comes from a name (image files, models, classes, layers,
parameters) goes through :func:`html.escape`; every link and image source is
a relative path inside the output folder, percent-quoted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image

from gallery.cards import CARDS_DIR, MANIFEST, Card, Page, card_dir, inside, read_card, write_json
from zoo import atomic_write

KINDS = {"image": "Images: every attribution method side by side",
         "model": "Models: filters, feature maps, atlas, class visualizations, inversions",
         "attacks": "Adversarial examples, fooling images and style",
         "dense": "Segmentation and detection: maps beside the predicted masks and boxes",
         "training": "Training"}
STYLESHEET = "style.css"
THUMBS_DIR = "thumbs"
THUMB_SIDE = 160

CSS = """\
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #263238; color: #fff; padding: 0.6em 1.2em; }
header a { color: #cfd8dc; margin-right: 1em; text-decoration: none; }
header a:hover, header a.here { color: #fff; text-decoration: underline; }
main { padding: 0.5em 1.2em 2em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; max-width: 100%; }
.card h3 { font-size: 1em; margin: 0 0 4px; }
.card .meta { color: #666; font-size: 0.85em; margin: 0 0 6px; }
.card.failed { border-color: #c62828; color: #c62828; }
figure { margin: 0 0 6px; display: inline-block; vertical-align: top; }
figure img { display: block; max-width: 100%; height: auto; image-rendering: auto; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #444; max-width: 520px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 4px 0; }
td, th { border: 1px solid #e0e0e0; padding: 1px 6px; text-align: left; vertical-align: top; }
details { font-size: 0.85em; } code { font-size: 0.95em; }
.note { font-size: 0.85em; max-width: 520px; }
ul.pages li { margin: 0.2em 0; }
ul.thumbs { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 10px; }
ul.thumbs li { width: 170px; font-size: 0.85em; }
ul.thumbs img { display: block; max-width: 160px; height: auto; border: 1px solid #ddd; background: #fff; }
.strip { display: flex; flex-wrap: wrap; gap: 8px; }
.strip .cell { width: 150px; font-size: 0.75em; color: #222; text-decoration: none; }
.strip img { display: block; width: 150px; height: auto; }
"""


def _href(path: str) -> str:
    """A relative URL for a path inside the output folder (quoted, then escaped for the attribute)."""
    return escape(quote(path), quote=True)


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _table(rows: dict[str, Any]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(_value(v))}</td></tr>"
                               for k, v in rows.items()) + "</table>"


def card_html(data: dict[str, Any], page: str) -> str:
    """One finished card: title, method, seconds, images with labels, scores and parameters."""
    parts = [f'<article class="card" id="{escape(data["id"], quote=True)}">',
             f"<h3>{escape(str(data.get('title', '')))}</h3>",
             f'<p class="meta">method <code>{escape(str(data.get("method", "")))}</code> &middot; '
             f'{float(data.get("seconds", 0.0)):.2f} s</p>']
    for image in data.get("images", []):
        src = f"{CARDS_DIR}/{page}/{image['file']}"
        label = escape(str(image.get("label", "")), quote=True)
        parts.append(f'<figure><img src="{_href(src)}" alt="{label}" width="{int(image["width"])}" '
                     f'height="{int(image["height"])}"><figcaption>{label}</figcaption></figure>')
    if data.get("note"):
        parts.append(f'<p class="note">{escape(str(data["note"]))}</p>')
    if data.get("scores"):
        parts.append(_table(data["scores"]))
    parts.append(f"<details><summary>parameters</summary>{_table(data.get('params', {}))}</details>")
    parts.append("</article>")
    return "\n".join(parts)


def strip_html(out: Path, page: dict[str, Any], section: str) -> str:
    """The finished cards of ``section`` in one row: last image (small), title and scores, linked to the card."""
    cells = []
    for c in page["cards"]:
        data = read_card(out, page["slug"], c["id"]) if c.get("section") == section else None
        if not data or not data.get("images"):
            continue
        image = data["images"][-1]
        src = f"{CARDS_DIR}/{page['slug']}/{image['file']}"
        numbers = " ".join(f"{escape(str(k))} {escape(_value(v))}" for k, v in data.get("scores", {}).items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool))
        cells.append(f'<a class="cell" href="#{escape(data["id"], quote=True)}"><img src="{_href(src)}" '
                     f'alt="{escape(str(data.get("title", "")), quote=True)}" width="150" height="'
                     f'{round(150 * int(image["height"]) / max(int(image["width"]), 1))}">'
                     f"<span><b>{escape(str(data.get('title', '')))}</b><br>{numbers}</span></a>")
    if not cells:
        return ""
    return f'<h2>{escape(section)}: side by side</h2>\n<div class="strip">' + "\n".join(cells) + "</div>"


def thumbnail(out: Path, page: dict[str, Any]) -> tuple[str, int, int] | None:
    """Write ``OUT/thumbs/SLUG.png``, the first image of the page's first finished card shrunk into a
    ``THUMB_SIDE`` square; return its path relative to ``out``, width and height (None: no finished card yet)."""
    for c in page["cards"]:
        data = read_card(out, page["slug"], c["id"])
        if not data or not data.get("images"):
            continue
        source = card_dir(out, page["slug"]) / data["images"][0]["file"]
        try:
            with Image.open(source) as image:
                small = image.convert("RGB")
                small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        except OSError:
            continue
        relative = f"{THUMBS_DIR}/{page['slug']}.png"
        atomic_write(inside(out, out / relative), lambda f, im=small: im.save(f, format="PNG"))
        return relative, small.width, small.height
    return None


def failed_html(card_id: str, title: str, reason: str) -> str:
    """A card that failed in this build (it is retried by the next one)."""
    return (f'<article class="card failed" id="{escape(card_id, quote=True)}"><h3>{escape(title)}</h3>'
            f"<p>failed: {escape(reason)}</p><p>run the gallery command again to retry it</p></article>")


def _document(title: str, body: str, pages: Sequence[dict[str, Any]], here: str) -> str:
    nav = ['<a href="index.html"' + (' class="here"' if here == "index" else "") + ">index</a>"]
    for kind in KINDS:
        for p in pages:
            if p["kind"] == kind:
                cls = ' class="here"' if p["slug"] == here else ""
                nav.append(f'<a href="{_href(p["slug"] + ".html")}"{cls}>{escape(p["title"])}</a>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)} - cnnviz gallery</title>\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<link rel="stylesheet" href="{STYLESHEET}">\n'
            '<link rel="icon" href="data:,">\n'  # no favicon request: a missing one is a console error
            f"</head>\n<body>\n<header><nav>{' '.join(nav)}</nav></header>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n")


def read_manifest(out: Path) -> dict[str, Any]:
    """``OUT/gallery.json``: the pages and their card order (empty when missing or unreadable)."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"pages": []}
    return data if isinstance(data, dict) and isinstance(data.get("pages"), list) else {"pages": []}


def update_manifest(out: Path, pages: Sequence[Page], cards: Sequence[Card], settings: dict[str, Any]) -> dict:
    """Merge this build's pages into the manifest (pages of earlier builds with other models stay)."""
    manifest = read_manifest(out)
    order = {p["slug"]: p for p in manifest["pages"] if isinstance(p, dict) and "slug" in p}
    for page in pages:
        order[page.slug] = {"slug": page.slug, "title": page.title, "kind": page.kind, "intro": page.intro,
                            "strip": page.strip,
                            "cards": [{"id": c.id, "title": c.title, "section": c.section}
                                      for c in cards if c.page == page.slug]}
    manifest = {"pages": list(order.values()), "settings": settings}
    write_json(inside(out, out / MANIFEST), manifest)
    return manifest


def write_site(out: Path, manifest: dict[str, Any], failed: dict[str, str] | None = None) -> list[Path]:
    """The stylesheet, ``index.html`` and one HTML file per page; only finished cards are shown."""
    failed = failed or {}
    pages = [p for p in manifest["pages"] if p.get("kind") in KINDS]
    written = [atomic_write(inside(out, out / STYLESHEET), lambda f: f.write(CSS.encode()))]
    index = ["<h1>cnnviz gallery</h1>",
             "<p>What a CNN sees, computed by cnnviz from the models and images below. Each card states the "
             "method, its parameters and the seconds it took.</p>"]
    settings = manifest.get("settings") or {}
    if settings.get("mode"):
        index.append(f"<p>Last build: {escape(str(settings['mode']))} mode, models "
                     f"{escape(', '.join(map(str, settings.get('models') or [])))}.</p>")
    if settings.get("left_out"):
        index.append(f"<p>Left out (their modules are not installed): "
                     f"{escape(', '.join(map(str, settings['left_out'])))}.</p>")
    for kind, heading in KINDS.items():
        entries = []
        for p in pages:
            if p["kind"] != kind:
                continue
            done = sum(read_card(out, p["slug"], c["id"]) is not None for c in p["cards"])
            thumb = thumbnail(out, p)
            picture = (f'<img src="{_href(thumb[0])}" alt="{escape(p["title"], quote=True)}" width="{thumb[1]}" '
                       f'height="{thumb[2]}" loading="lazy">' if thumb else "")
            entries.append(f'<li><a href="{_href(p["slug"] + ".html")}">{picture}{escape(p["title"])}</a> '
                           f"({done} of {len(p['cards'])} cards)</li>")
        if entries:
            index.append(f"<h2>{escape(heading)}</h2>\n<ul class=\"pages thumbs\">\n" + "\n".join(entries)
                         + "\n</ul>")
    html = _document("index", "\n".join(index), pages, "index")
    written.append(atomic_write(inside(out, out / "index.html"), lambda f: f.write(html.encode("utf-8"))))
    for p in pages:
        body = [f"<h1>{escape(p['title'])}</h1>"]
        if p.get("intro"):
            body.append(f"<p>{escape(p['intro'])}</p>")
        if p.get("strip"):
            body.append(strip_html(out, p, p["strip"]))
        section = None
        open_cards = False
        for c in p["cards"]:
            if c.get("section", "") != section:
                if open_cards:
                    body.append("</div>")
                section = c.get("section", "")
                if section:
                    body.append(f"<h2>{escape(section)}</h2>")
                body.append('<div class="cards">')
                open_cards = True
            data = read_card(out, p["slug"], c["id"])
            reason = failed.get(f"{p['slug']}/{c['id']}")
            if data is not None:
                body.append(card_html(data, p["slug"]))
            elif reason is not None:
                body.append(failed_html(c["id"], c.get("title", c["id"]), reason))
        if open_cards:
            body.append("</div>")
        html = _document(p["title"], "\n".join(body), pages, p["slug"])
        written.append(atomic_write(inside(out, out / f"{p['slug']}.html"), lambda f, h=html: f.write(h.encode())))
    return written
