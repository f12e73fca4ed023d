"""Property tests generated from the declared option ranges (zoo.checks): every out-of-range, NaN or
wrong-type value of every declared option of every registered method is refused with one
CnnvizError line in Python and exit code 2 on the CLI, before any work and with the model unchanged;
hostile file names never lead a write outside the output folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz import interpret
from cnnviz.cli.main import main
from tests.conftest import assert_unchanged, state_snapshot
from cnnviz.zoo.core import Between, CnnvizError, choice_declarations, declarations

DECLARED = [(m.name, option, kind, bounds) for m in interpret.methods()
            for option, (kind, bounds) in declarations(m.fn.__wrapped__).items()]  # type: ignore[attr-defined]


def bad_values(kind: type, bounds: Between) -> st.SearchStrategy[object]:
    """Values outside ``bounds`` or not of ``kind``: NaN, infinities, past either end, floats for ints."""
    options: list[st.SearchStrategy[object]] = [st.sampled_from([math.nan, math.inf, -math.inf, True, "3", None])]
    step = st.integers(1, 10**6) if kind is int else st.floats(1e-6, 1e6)
    if bounds.low is not None:
        options.append(step.map(lambda d: bounds.low - d))
        if bounds.open_low:
            options.append(st.just(kind(bounds.low)))
    if bounds.high is not None:
        options.append(step.map(lambda d: bounds.high + d))
        if bounds.open_high:
            options.append(st.just(kind(bounds.high)))
    if kind is int:
        options.append(st.floats(-1e6, 1e6).filter(lambda v: not float(v).is_integer()))
    return st.one_of(options).filter(lambda v: v is not None)


def test_every_method_with_numeric_options_declares_their_ranges():
    names = {name for name, *_ in DECLARED}
    assert {"occlusion", "smoothgrad", "integrated_gradients", "actmax", "invert", "dream", "pgd"} <= names


@pytest.mark.parametrize("name, option, kind, bounds", DECLARED, ids=[f"{n}-{o}" for n, o, *_ in DECLARED])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_python_refuses_every_bad_value_before_any_work(tiny, name, option, kind, bounds, data):
    value = data.draw(bad_values(kind, bounds))
    tiny.train()
    before = state_snapshot(tiny)
    with pytest.raises(CnnvizError, match=option) as caught:
        interpret.get_method(name).fn(tiny, torch.rand(1, 3, 16, 16), 1, **{option: value})
    assert "\n" not in str(caught.value)
    assert_unchanged(before, tiny)


CHOICES = [(m.name, option, choices) for m in interpret.methods()
           for option, choices in choice_declarations(m.fn.__wrapped__).items()]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name, option, choices", CHOICES, ids=[f"{n}-{o}" for n, o, _ in CHOICES])
def test_python_refuses_a_choice_not_declared_before_any_work(tiny, name, option, choices):
    tiny.train()
    before = state_snapshot(tiny)
    with pytest.raises(CnnvizError, match=f"unknown {option} 'nonsense': choose from") as caught:
        interpret.get_method(name).fn(tiny, torch.rand(1, 3, 16, 16), 1, **{option: "nonsense"})
    assert "\n" not in str(caught.value) and all(str(c) in str(caught.value) for c in choices)
    assert_unchanged(before, tiny)


EXPLAIN = [(n, o, k, b) for n, o, k, b in DECLARED if interpret.get_method(n).family == "attribution"]


@pytest.mark.parametrize("name, option, kind, bounds", EXPLAIN, ids=[f"{n}-{o}" for n, o, *_ in EXPLAIN])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_cli_refuses_every_bad_value_in_one_line_and_writes_nothing(tmp_path, capsys, name, option, kind, bounds,
                                                                   data):
    value = data.draw(bad_values(kind, bounds).filter(lambda v: not isinstance(v, (bool, str))))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", name, "-i", "chelsea", "--out", str(out), f"--{option.replace('_', '-')}={value}"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert not out.exists()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stem=st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1,
                    max_size=60).filter(lambda s: s not in (".", "..")))
def test_hostile_image_names_write_only_into_the_output_folder(tmp_path_factory, stem):
    from PIL import Image

    root = tmp_path_factory.mktemp("names")
    source = root / "in" / f"{stem}.png"
    source.parent.mkdir()
    try:
        Image.new("L", (20, 20), 128).save(source, format="PNG")
    except OSError:  # a name this file system will not store (too long in bytes, ...)
        return
    out = root / "out"
    assert main(["explain", "gradient", "--model", "fashion_cnn", "-i", str(source), "--out", str(out)]) == 0
    written = [p for p in root.rglob("*") if p.is_file() and p != source]
    assert written and all(p.parent == out for p in written)
    assert all(not p.name.startswith((".", "-")) and "\n" not in p.name for p in written)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=300))
def test_a_cleaned_name_is_safe_and_cleaning_it_again_changes_nothing(name):
    from cnnviz.zoo import safe_name

    cleaned = safe_name(name)
    assert cleaned and len(cleaned) <= 200 and safe_name(cleaned) == cleaned
    assert not cleaned.startswith((".", "-", "_")) and not any(c in cleaned for c in "/\\\x00\n :*?\"'<>|")


def test_paths_of_written_files_stay_relative_to_out():
    from cnnviz.cli.output import OutputFolder, safe_name

    folder = OutputFolder("/tmp/x")
    for name in ("a b", "é.png", "-rf", ".bashrc", "x" * 500 + ".png"):
        child = folder / name
        assert child.parent == Path("/tmp/x") and len(child.name) <= 200 and child.name == safe_name(name)


from cnnviz.cli.main import build_parser  # noqa: E402

PARSER = build_parser()  # built once: each case below parses one command line with it


def _checked_flags() -> list[tuple[str, str, type, Between]]:
    parser = PARSER
    commands = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001
    return [(name, action.option_strings[0], *action.type.declared)
            for name, sub in commands.items() for action in sub._actions  # noqa: SLF001
            if action.option_strings and hasattr(action.type, "declared")]


FLAGS = _checked_flags()


def test_every_command_checks_its_numeric_flags():
    assert len({command for command, *_ in FLAGS}) >= 12 and len(FLAGS) >= 60


@pytest.mark.parametrize("command, flag, kind, bounds", FLAGS, ids=[f"{c}{f}" for c, f, *_ in FLAGS])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_checked_flag_of_every_command_refuses_bad_values_in_one_line(capsys, command, flag, kind, bounds,
                                                                           data):
    value = data.draw(bad_values(kind, bounds).filter(lambda v: not isinstance(v, (bool, str))))
    with pytest.raises(SystemExit) as exit_info:
        PARSER.parse_args([command, f"{flag}={value}"])  # what main() parses first, before any work
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and flag in err, err
