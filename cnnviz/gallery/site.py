"""The HTML: an index and one page per :class:`~gallery.cards.Page`, written from the card JSONs.

The pages come from templates (``gallery/templates``) rendered by the explorer's autoescaping Jinja2
environment (:mod:`explorer.templating`), so every text that comes from a name (image files, models, classes,
layers, parameters) is escaped; every link and image source is a relative path inside the output folder,
percent-quoted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from PIL import Image

from cnnviz.explorer.templating import templates
from cnnviz.gallery.cards import CARDS_DIR, MANIFEST, Card, Page, card_dir, inside, read_card, write_json
from cnnviz.zoo import atomic_write

KINDS = {"image": "Images: every attribution method side by side",
         "model": "Models: filters, feature maps, atlas, class visualizations, inversions",
         "attacks": "Adversarial examples, fooling images and style",
         "dense": "Segmentation and detection: maps beside the predicted masks and boxes",
         "training": "Training"}
STYLESHEET = "style.css"
THUMBS_DIR = "thumbs"
THUMB_SIDE = 160
TEMPLATES = Path(__file__).parent / "templates"

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


def shown(value: Any) -> str:
    """A parameter or score as the tables show it."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def site_templates() -> jinja2.Environment:
    """The explorer's autoescaping template environment, with the gallery's own templates beside its own."""
    env = templates(TEMPLATES)
    env.filters["shown"] = shown
    return env


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
    manifest = {"pages": list(order.values()), "settings": settings, "audits": manifest.get("audits") or {}}
    write_json(inside(out, out / MANIFEST), manifest)
    return manifest


def write_site(out: Path, manifest: dict[str, Any], failed: dict[str, str] | None = None) -> list[Path]:
    """The stylesheet, ``index.html`` and one HTML file per page; only finished cards are shown."""
    failed = failed or {}
    pages = [p for p in manifest["pages"] if p.get("kind") in KINDS]
    written = [atomic_write(inside(out, out / STYLESHEET), lambda f: f.write(CSS.encode()))]
    env = site_templates()
    common = {"pages": pages, "kinds": list(KINDS), "stylesheet": STYLESHEET, "cards_dir": CARDS_DIR}
    groups = [(heading, [{"page": p, "thumb": thumbnail(out, p),
                          "done": sum(read_card(out, p["slug"], c["id"]) is not None for c in p["cards"])}
                         for p in pages if p["kind"] == kind]) for kind, heading in KINDS.items()]
    html = env.get_template("gallery_index.html").render(title="index", here="index", groups=groups,
                                                          settings=manifest.get("settings") or {},
                                                          audits=manifest.get("audits") or {}, **common)
    written.append(atomic_write(inside(out, out / "index.html"), lambda f: f.write(html.encode("utf-8"))))
    for p in pages:
        sections: list[tuple[str, list[dict[str, Any]]]] = []
        strip = []
        for c in p["cards"]:
            data = read_card(out, p["slug"], c["id"])
            if not sections or sections[-1][0] != c.get("section", ""):
                sections.append((c.get("section", ""), []))
            sections[-1][1].append({"id": c["id"], "title": c.get("title", c["id"]), "data": data,
                                    "reason": failed.get(f"{p['slug']}/{c['id']}")})
            if p.get("strip") and c.get("section") == p["strip"] and data and data.get("images"):
                strip.append(data)
        html = env.get_template("gallery_page.html").render(title=p["title"], here=p["slug"], page=p,
                                                             sections=sections, strip=strip, **common)
        written.append(atomic_write(inside(out, out / f"{p['slug']}.html"), lambda f, h=html: f.write(h.encode())))
    return written
