"""An audit as static pages (``audit.html`` beside ``audit.json`` for ``cnnviz audit``; in a gallery site,
``cnnviz gallery --audit`` through :func:`publish_audit`):
the explorer's data view (the same autoescaped templates and the same figures) written to files. The overview
links to one page per class, one per list of items (a confusion cell, a confidence bin, a class right or wrong,
a cluster, a flag) and to the figures; only what a written page links to is written, so no link is broken.

::

    OUT/audit.html              the overview (``index`` names it)
    OUT/report/class-*.html     a class: clusters with prototypes and mean maps, embedding, concepts, flags
    OUT/report/items-*.html     a list of items, each with its map
    OUT/report/files/*.png      the figures; OUT/report/explorer.css

Example:
    >>> import tempfile, torch
    >>> from cnnviz import interpret, zoo
    >>> run = tempfile.mkdtemp()
    >>> data = (torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0)), torch.arange(12) % 2)
    >>> _ = interpret.audit(zoo.load("fashion_cnn", device="cpu"), data, workdir=run, concepts=0)
    >>> write_audit_report(run, run, images=data[0]).name
    'audit.html'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cnnviz import zoo
from cnnviz.explorer import audit_view
from cnnviz.explorer.audit_job import KeptAudit, figure_png, figure_row, open_run
from cnnviz.explorer.audit_view import Row, Selection
from cnnviz.explorer.templating import STYLESHEET, templates
from cnnviz.gallery.cards import MANIFEST, inside, slug, write_json
from cnnviz.gallery.site import read_manifest, write_site
from cnnviz.zoo.core import CnnvizError
from cnnviz.zoo.data import DataSource, open_dataset
from cnnviz.zoo.handle import ModelHandle

AUDITS_DIR = "audits"  # where a gallery site keeps its published audits, one folder each
REPORT_DIR = "report"
FILES_DIR = "files"
STATIC_SHOWN = 240  # items a static list shows (the first of them; the explorer pages through all)


class Written:
    """What the pages written so far link to: the classes, the lists and the figures still to write."""

    def __init__(self) -> None:
        self.classes: dict[str, str] = {}
        self.selections: dict[str, Selection] = {}
        self.figures: set[str] = set()


class StaticLinks:
    """The static report's links (:class:`explorer.audit_view.Links`), relative to a page in ``OUT`` (``prefix``
    ``report/``) or in ``OUT/report`` (no prefix); each link is noted in ``written`` so its file is made."""

    def __init__(self, written: Written, prefix: str, home: str) -> None:
        self.written, self.prefix, self.home = written, prefix, home

    def overview(self) -> str:
        return self.home

    def items(self, selection: Selection) -> str:
        name = f"items-{slug(selection.key())}.html"
        self.written.selections[name] = selection
        return self.prefix + name

    def klass(self, name: str) -> str:
        page = f"class-{slug(name)}.html"
        self.written.classes[page] = name
        return self.prefix + page

    def item(self, row: Row) -> str:
        return self.figure(audit_view.figure_name("item", row.row))

    def figure(self, name: str) -> str:
        self.written.figures.add(name)
        return f"{self.prefix}{FILES_DIR}/{name}.png"


def item_images(run: KeptAudit, images: DataSource | None, handle: ModelHandle | None) -> Callable[[int], np.ndarray]:
    """The ``(C, H, W)`` image of a row, as its map was made: prepared by ``handle`` where given (resized and
    cropped to the model's input), else as the data holds it; the data is ``images`` or the audit's source."""
    source = run.report["data"]["source"] if images is None else images
    try:
        dataset = open_dataset(source)
    except CnnvizError as exc:
        raise CnnvizError(f"the audit's images are not readable here ({exc}): give the data the audit was made "
                          "over") from None
    if len(dataset) != len(run.rows):
        raise CnnvizError(f"the data has {len(dataset)} items, but the audit was made over {len(run.rows)}: give "
                          "the data the audit was made over")

    def image(row: int) -> np.ndarray:
        picture = zoo.load_image(dataset[row], channels=handle.in_channels if handle is not None else None)
        return (handle.prepare([picture])[0] if handle is not None else picture).detach().cpu().numpy()

    return image


def write_audit_report(out: str | Path, run_dir: str | Path, *, index: str = "audit.html",
                       images: DataSource | torch.Tensor | None = None, handle: ModelHandle | None = None) -> Path:
    """Write the finished audit in ``run_dir`` as static pages under ``out`` (the same folder, for ``cnnviz
    audit``); returns the overview page ``OUT/INDEX``.

    Args:
        out: the folder the pages are written in (nothing is written outside it).
        run_dir: the audit's run folder (``interpret.audit(..., workdir=RUN_DIR)``).
        index: the overview page's name.
        images: the audited images (default: the audit's data source, read again).
        handle: the audited model, to show each image as the model saw it (resized and cropped).
    """
    root = Path(out)
    run = open_run(Path(run_dir))
    image_of = item_images(run, images, handle)
    env = templates()
    written = Written()
    home, inner = StaticLinks(written, f"{REPORT_DIR}/", index), StaticLinks(written, "", f"../{index}")
    report, rows, model = run.report, run.rows, run.report["model"]["name"]
    folder = inside(root, root / REPORT_DIR)
    common = {"exported": True, "model": model, "image": None}

    def write(path: Path, content: bytes) -> Path:
        return zoo.atomic_write(inside(root, path), lambda f: f.write(content))

    page = env.get_template("audit.html").render(**common, assets=f"{REPORT_DIR}/", job=None,
                                                 **audit_view.overview(report, rows, home))
    done: set[str] = set()
    while pending := [p for p in [*written.classes, *written.selections] if p not in done]:
        for name in pending:
            done.add(name)
            if name in written.classes:
                html = env.get_template("audit_class.html").render(
                    **common, **audit_view.class_page(report, written.classes[name], rows, inner))
            else:
                html = env.get_template("audit_items.html").render(
                    **common, **audit_view.items_page(report, rows, run.audit.items, written.selections[name], inner,
                                                      order="-confidence", limit=STATIC_SHOWN))
            write(folder / name, html.encode())
    for name in sorted(written.figures):
        kind, parts = audit_view.parse_figure(name, report)
        row = figure_row(run, kind, parts)
        write(folder / FILES_DIR / f"{name}.png", figure_png(run, kind, parts, None if row is None else image_of(row)))
    write(folder / STYLESHEET.name, STYLESHEET.read_bytes())
    return write(root / index, page.encode())


def publish_audit(site: str | Path, run_dir: str | Path, *, images: DataSource | None = None,
                  handle: ModelHandle | None = None) -> Path:
    """Publish the finished audit in ``run_dir`` into the gallery ``site`` (``cnnviz gallery --audit``):
    ``SITE/audits/NAME/index.html`` and its report, listed on ``SITE/index.html`` with the site's other pages; an
    audit of the same model, method and data replaces its earlier copy. Returns the audit's page.

    Args:
        site: the gallery's folder (made when missing).
        run_dir: the audit's run folder.
        images: the audited images (default: the audit's data source, read again).
        handle: the audited model, to show each image as the model saw it.
    """
    root = Path(site)
    if root.exists() and not root.is_dir():
        raise CnnvizError(f"{root} is a file: give a folder for the gallery")
    report = open_run(Path(run_dir)).report
    model, data = report["model"]["name"], report["data"]
    name = slug(f"{model}-{report['method']}-{data['source']}")
    page = write_audit_report(root / AUDITS_DIR / name, run_dir, index="index.html", images=images, handle=handle)
    raised = sum(f["score"] >= (report["threshold"] or 0) for f in report["flags"])
    manifest = read_manifest(root)
    manifest.setdefault("audits", {})[name] = {
        "href": f"{AUDITS_DIR}/{name}/index.html",
        "title": f"{model} on {data['source']} ({data['items']} items, maps by {report['method']}): accuracy "
                 f"{100 * report['overall']['accuracy']:.1f}%, {raised} flag{'' if raised == 1 else 's'} raised"}
    write_json(inside(root, root / MANIFEST), manifest)
    write_site(root, manifest)
    return page
