"""``cnnviz explain`` runs a family by name and any ``captum:Name``; its help lists methods by family."""

import argparse

from cnnviz.cli.commands.explain import _chosen
from cnnviz.cli.main import main


def test_family_names_expand_to_their_methods_in_registry_order():
    chosen = [m.name for m in _chosen(argparse.Namespace(methods=["perturbation", "gradcam", "occlusion"]))]
    assert chosen == ["occlusion", "rise", "extremal", "gradcam"]  # each method once
    assert {m.group for m in _chosen(argparse.Namespace(methods=["cams"]))} == {"cams"}


def test_explain_runs_a_family_and_a_captum_class_by_name(tmp_path, capsys):
    code = main(["explain", "perturbation", "captum:NoiseTunnel(InputXGradient)", "-i", "coffee",
                 "--masks", "8", "--steps", "2", "--window", "112", "--stride", "112", "--samples", "2",
                 "--out", str(tmp_path)])
    assert code == 0
    for name in ("occlusion", "rise", "extremal", "captum_NoiseTunnel_InputXGradient_"):  # file-safe stems
        assert any(path.name.startswith(f"coffee-{name}") and path.suffix == ".png" for path in tmp_path.iterdir())


def test_explain_help_groups_methods_by_family(cli):
    text = cli("explain", "--help").out
    for family in ("gradients:", "perturbation:", "cams:", "captum:"):
        assert f"\n {family}" in text
    assert text.index(" cams:") < text.index("  scorecam") < text.index(" captum:")
