"""Examples run: every ``>>>`` line in the docstrings of zoo, interpret, cli, gallery and explorer is executed.

Each module's examples run in the module's own namespace (as ``python -m doctest``
would), with ``...`` and whitespace-insensitive matching. Examples that would take many
seconds carry ``# doctest: +SKIP`` and say why beside them. A docstring whose examples read
Fashion-MNIST marks one of them ``# doctest: +NEEDS_FASHION_MNIST``: on a machine without
the data (Debian's ``dataset-fashion-mnist``) that docstring is skipped and the test says so.
"""

import doctest
import importlib
import pkgutil

import pytest

from cnnviz.zoo.data import DATASETS

PACKAGES = ("cnnviz.zoo", "cnnviz.interpret", "cnnviz.cli", "cnnviz.gallery", "cnnviz.explorer")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
NEEDS_FASHION_MNIST = doctest.register_optionflag("NEEDS_FASHION_MNIST")
HAVE_FASHION_MNIST = (DATASETS["fashion-mnist"].default_dir / "train-images-idx3-ubyte.gz").is_file()


def module_names() -> list[str]:
    names = ["cnnviz"]
    for package in PACKAGES:
        names.append(package)
        root = importlib.import_module(package)
        names += [info.name for info in pkgutil.walk_packages(root.__path__, f"{package}.")]
    return sorted(names)


MODULES = module_names()


def test_every_package_has_examples():
    finder = doctest.DocTestFinder()
    counted = {p: 0 for p in PACKAGES}
    for name in MODULES:
        examples = sum(len(t.examples) for t in finder.find(importlib.import_module(name), name))
        if name != "cnnviz":
            counted[".".join(name.split(".")[:2])] += examples
    assert all(counted.values()), f"a package has no examples at all: {counted}"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, capsys):
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    without_data = []
    for test in doctest.DocTestFinder().find(module, name):
        if not HAVE_FASHION_MNIST and any(e.options.get(NEEDS_FASHION_MNIST) for e in test.examples):
            without_data.append(test.name)
            continue
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    capsys.readouterr()  # summarize prints; keep the test log quiet
    assert results.failed == 0, "".join(report)
    if without_data:
        pytest.skip(f"{results.attempted} examples passed; {', '.join(without_data)} need Fashion-MNIST, not "
                    "installed (apt-get install dataset-fashion-mnist)")
