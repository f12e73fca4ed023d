"""Attacks on the engine: FGSM and PGD (L-inf and L2) on real images, and fooling images from noise."""

from cnnviz.interpret.attack.adversarial import (
           NORMS,
           AttackReport,
           amplified_difference,
           attack_report,
           fgsm,
           perturbation_norms,
           pgd,
)
from cnnviz.interpret.attack.fooling import FoolingResult, fool, parse_classes

__all__ = ["FoolingResult", "fool", "parse_classes", "NORMS", "AttackReport", "amplified_difference",
           "attack_report", "fgsm", "perturbation_norms", "pgd"]
