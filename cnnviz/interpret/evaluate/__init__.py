"""Explaining and evaluating attribution maps: the one explain recipe every front end calls
(:func:`explain_one`, with its record, :mod:`.explanation_json`), deletion/insertion and the randomization
check (:mod:`.faithfulness`), ROAD, infidelity and max-sensitivity, complexity, statistics with intervals, and maps from any source
(:mod:`.map_sources`); :mod:`.scoring` runs every metric over many images. Imports only core and zoo:
metrics never import methods."""

from cnnviz.interpret.evaluate.complexity import entropy, gini
from cnnviz.interpret.evaluate.explanation import Explanation, call_options, explain_one, explains_region
from cnnviz.interpret.evaluate.explanation_json import explanation_record, explanation_title
from cnnviz.interpret.evaluate.faithfulness import (Curves, deletion_insertion, random_band, random_maps, RandomBand,
                                             randomization_check, RandomizationResult)
from cnnviz.interpret.evaluate.map_sources import as_maps, load_map, maps_in_folder, MapSource
from cnnviz.interpret.evaluate.road import FRACTIONS, road, RoadResult
from cnnviz.interpret.evaluate.robustness import infidelity, max_sensitivity
from cnnviz.interpret.evaluate.scoring import (ALIASES, DEFAULT_METRICS, DELETIONS, METRICS, CurveSteps, evaluate_images,
                                        EvaluationOptions, file_maker, method_maker, random_maker, Record, Resamples,
                                        summary_rows)
from cnnviz.interpret.evaluate.similarity import MEASURES, similarity
from cnnviz.interpret.evaluate.statistics import bootstrap_interval, spearman, summarize, Summary

__all__ = [
    "entropy", "gini", "Explanation", "call_options", "explain_one", "explains_region", "explanation_record", "explanation_title", "Curves", "RandomBand", "RandomizationResult", "random_band", "deletion_insertion",
    "random_maps", "randomization_check", "MapSource", "as_maps", "load_map", "maps_in_folder", "FRACTIONS",
    "RoadResult", "road", "infidelity", "max_sensitivity", "ALIASES", "DELETIONS", "DEFAULT_METRICS", "METRICS",
    "CurveSteps", "EvaluationOptions", "Record", "Resamples", "evaluate_images", "file_maker", "method_maker",
    "random_maker", "summary_rows", "MEASURES", "similarity", "Summary", "bootstrap_interval", "spearman", "summarize",
]
