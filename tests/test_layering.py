"""Imports run downward only: zoo <- interpret <- (cli, gallery). Read statically, so a late import counts too."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"zoo": {"interpret", "cli", "gallery", "bench"}, "interpret": {"cli", "gallery", "bench"}}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    """(line, top-level package) of every import in a file, at any depth (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name.split(".")[0]) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no files found under {package}/"
    bad = [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in files
           for line, name in sorted(imported_packages(path)) if name in FORBIDDEN[package]]
    assert not bad, "imports must run downward (zoo <- interpret <- cli, gallery):\n" + "\n".join(bad)


def test_the_walk_sees_late_imports(tmp_path):
    source = tmp_path / "late.py"
    source.write_text("def f():\n    from interpret.render import caption\n    import cli.main\n")
    assert {name for _, name in imported_packages(source)} == {"interpret", "cli"}
