"""Imports run downward only, read statically (a late import counts too).

Everything lives under ``cnnviz``; nothing imports the old top-level names (``interpret``, ``zoo``, ...).
Packages: zoo <- interpret <- (explorer <- cli, gallery). Inside interpret, each subpackage is one concern:

    core                          <- zoo only
    evaluate, optimize            <- core (metrics never import methods)
    inside                        <- core, optimize (a layer sheet pictures its channels with the engine)
    attribution, attack           <- core, optimize (extremal perturbations and attacks run on the engine)
    audit                         <- core, evaluate, inside, attribution (a model over its data)
    views                         <- anything: drawing is a leaf that nothing else in interpret imports

Inside zoo, the same (a table of contents, read bottom up):

    core                          <- nothing
    handle                        <- core
    data, models                  <- core, handle (data and models never import each other)
    train                         <- core, handle, data, models
    catalog                       <- core, handle, data, models, train (the names zoo.load knows)
    sources                       <- everything below (a plain name is looked up in the catalog)

cli, gallery and explorer import the faces (``interpret``, ``interpret.<subpackage>``), never a file behind them;
they and interpret import zoo's faces (``zoo``, ``zoo.<subpackage>``) only. No module of cnnviz takes part in an
import circle.
"""

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "cnnviz"
OLD_TOP_LEVEL = {"interpret", "zoo", "cli", "gallery", "explorer"}
FORBIDDEN = {"zoo": {"interpret", "cli", "gallery", "bench", "explorer"},
             "interpret": {"cli", "gallery", "bench", "explorer"},
             "explorer": {"cli", "gallery", "bench"}}
ALLOWED = {  # subpackage of interpret -> the subpackages it may import (itself always)
    "core": set(),
    "evaluate": {"core"},
    "optimize": {"core"},
    "inside": {"core", "optimize"},  # a layer sheet pictures its channels with the engine
    "attribution": {"core", "optimize"},
    "attack": {"core", "optimize"},
    "audit": {"core", "evaluate", "inside", "attribution"},
    "views": {"core", "optimize", "inside", "evaluate", "attribution", "attack", "audit"},
}
ZOO_ALLOWED = {  # subpackage of zoo -> the subpackages it may import (itself always)
    "core": set(),
    "handle": {"core"},
    "data": {"core", "handle"},
    "models": {"core", "handle"},
    "train": {"core", "handle", "data", "models"},
    "catalog": {"core", "handle", "data", "models", "train"},
    "sources": {"core", "handle", "data", "models", "train", "catalog"},
}
ZOO_FACES = {"cnnviz.zoo"} | {f"cnnviz.zoo.{sub}" for sub in ZOO_ALLOWED}


def imports(path: Path) -> set[tuple[int, str]]:
    """(line, module) of every absolute import in a file, at any depth; ``from a import b`` gives ``a.b``
    when ``a/b`` is a module or package of this repository, else ``a``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            folder = ROOT.parent / node.module.replace(".", "/")
            for alias in node.names:
                child = folder / alias.name
                is_module = child.with_suffix(".py").is_file() or (child / "__init__.py").is_file()
                found.add((node.lineno, f"{node.module}.{alias.name}" if is_module else node.module))
    return found


def written_imports(path: Path) -> set[tuple[int, str]]:
    """(line, module) as written: ``from a import b`` gives ``a``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module))
    return found


def local(name: str) -> str:
    """A module's name inside cnnviz (``cnnviz.zoo.hooks`` -> ``zoo.hooks``); others unchanged."""
    return name.removeprefix("cnnviz.")


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, cnnviz package, or other top-level package) of every import in a file."""
    return {(line, local(name).split(".")[0]) for line, name in imports(path)}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def interpret_files() -> list[Path]:
    return sorted((ROOT / "interpret").rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no files found under {package}/"
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in files
           for line, name in sorted(imported_packages(path)) if name in FORBIDDEN[package]]
    assert not bad, "imports must run downward (zoo <- interpret <- cli, gallery):\n" + "\n".join(bad)


def floor_breaches(package: str, allowed: dict[str, set[str]]) -> list[str]:
    """Imports from one subpackage of ``package`` into another that ``allowed`` does not list."""
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT / package).parts
        if len(parts) == 1:
            continue  # the face and the moved-module shims
        own = parts[0]
        if own not in allowed:
            continue  # data folders (zoo/weights, zoo/samples) hold no code
        for line, name in sorted(imports(path)):
            bits = local(name).split(".")
            if bits[0] == package and len(bits) > 1 and bits[1] != own and bits[1] not in allowed[own]:
                bad.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {name}")
    return bad


def test_subpackages_import_only_those_below_them():
    bad = floor_breaches("interpret", ALLOWED)
    assert not bad, "an interpret subpackage imports one it may not (see this file's docstring):\n" + "\n".join(bad)


def test_zoo_floors_import_only_those_below_them():
    assert {p.name for p in (ROOT / "zoo").iterdir() if (p / "__init__.py").is_file()} == set(ZOO_ALLOWED)
    assert not [p.name for p in (ROOT / "zoo").glob("*.py") if p.name not in ("__init__.py", "_moved.py")], \
        "zoo's root holds its face and the moved-module map only: a module belongs on a floor"
    bad = floor_breaches("zoo", ZOO_ALLOWED)
    assert not bad, "a zoo subpackage imports one it may not (see this file's docstring):\n" + "\n".join(bad)


def test_the_floor_walk_sees_a_breach(tmp_path, monkeypatch):
    package = tmp_path / "cnnviz" / "zoo" / "data"
    package.mkdir(parents=True)
    (package / "reader.py").write_text("def f():\n    from cnnviz.zoo.models.cnns import CnnSpec\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "cnnviz")
    assert floor_breaches("zoo", ZOO_ALLOWED) == ["zoo/data/reader.py:2 (data) imports cnnviz.zoo.models.cnns"]


def test_drawing_is_a_leaf():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in interpret_files()
           if "views" not in path.relative_to(ROOT / "interpret").parts[:1]
           for line, name in sorted(imports(path)) if local(name).startswith("interpret.views")]
    assert not bad, "nothing in interpret may import its drawing (interpret.views):\n" + "\n".join(bad)


def test_cli_gallery_and_explorer_import_faces_only():
    faces = {"cnnviz.interpret"} | {f"cnnviz.interpret.{sub}" for sub in ALLOWED}
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}, a file behind a face"
           for package in ("cli", "gallery", "explorer") for path in sorted((ROOT / package).rglob("*.py"))
           for line, name in sorted(written_imports(path)) if name.startswith("cnnviz.interpret") and name not in faces]
    assert not bad, "cli, gallery and explorer import interpret's faces, not its files:\n" + "\n".join(bad)


def test_the_packages_above_zoo_import_its_faces_only():
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}, a file behind zoo's faces"
           for package in ("interpret", "cli", "gallery", "explorer") for path in sorted((ROOT / package).rglob("*.py"))
           for line, name in sorted(written_imports(path)) if name.startswith("cnnviz.zoo") and name not in ZOO_FACES]
    assert not bad, "interpret, cli, gallery and explorer import zoo's faces (zoo, zoo.<floor>):\n" + "\n".join(bad)


def test_cnnviz_has_no_import_circles():
    graph = {module_name(path): {name for _, name in imports(path) if name.startswith("cnnviz.")}
             for path in sorted(ROOT.rglob("*.py"))}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else path + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            pytest.fail("import circle: " + " -> ".join(cycle))


def test_the_walk_sees_late_imports(tmp_path):
    source = tmp_path / "late.py"
    source.write_text("def f():\n    from cnnviz.interpret.views.pixels import caption\n    import cnnviz.cli.main\n")
    assert {name for _, name in imported_packages(source)} == {"interpret", "cli"}
    assert {name for _, name in imports(source)} == {"cnnviz.interpret.views.pixels", "cnnviz.cli.main"}


def test_the_circle_finder_finds_a_circle(tmp_path, monkeypatch):
    package = tmp_path / "cnnviz" / "interpret"
    package.mkdir(parents=True)
    (package / "a.py").write_text("from cnnviz.interpret import b\n")
    (package / "b.py").write_text("def f():\n    import cnnviz.interpret.a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path / "cnnviz")
    with pytest.raises(pytest.fail.Exception,
                       match="cnnviz.interpret.a -> cnnviz.interpret.b -> cnnviz.interpret.a"):
        test_cnnviz_has_no_import_circles()


def python_files() -> list[Path]:
    return sorted(p for folder in ("cnnviz", "tests", "bench") for p in (REPO / folder).rglob("*.py"))


def test_nothing_imports_the_old_top_level_names():
    bad = [f"{path.relative_to(REPO)}:{line} imports {name}" for path in python_files()
           if path.name != "test_namespace.py"  # imports InterpretML's interpret on purpose
           for line, name in sorted(written_imports(path)) if name.split(".")[0] in OLD_TOP_LEVEL]
    assert not bad, "cnnviz installs one name; import its packages as cnnviz.NAME:\n" + "\n".join(bad)

