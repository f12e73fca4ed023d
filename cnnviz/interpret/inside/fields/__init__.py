"""Receptive fields: which input pixels each unit sees, by arithmetic over a traced forward pass
(:mod:`.geometry`, :mod:`.receptive_field`) and checked by gradient probing (:mod:`.probe`)."""

from cnnviz.interpret.inside.fields.probe import unit_gradient, verify_receptive_field
from cnnviz.interpret.inside.fields.receptive_field import layer_field, receptive_field, receptive_fields
from cnnviz.interpret.inside.fields.types import Box, LayerField, ReceptiveField

__all__ = ["unit_gradient", "verify_receptive_field", "layer_field", "receptive_field", "receptive_fields", "Box",
           "LayerField", "ReceptiveField"]
