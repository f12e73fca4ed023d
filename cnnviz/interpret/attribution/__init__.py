"""Attribution: which input pixels a class score rests on. Perturbation (occlusion, RISE, extremal
perturbations), gradients (saliency, SmoothGrad, integrated gradients, guided backprop), the CAM family
(:mod:`interpret.attribution.cam`) and captum's catalog through the registry (``captum:Name``).

Importing this package registers every method."""

from cnnviz.interpret.attribution import captum_adapter  # registers captum's catalog as captum:Name
from cnnviz.interpret.attribution.cam import (
                                       ablationcam,
                                       eigencam,
                                       eigengradcam,
                                       fem,
                                       finercam,
                                       fullgrad,
                                       gradcam,
                                       gradcam_elementwise,
                                       gradcam_plusplus,
                                       guided_gradcam,
                                       hirescam,
                                       kpcacam,
                                       layercam,
                                       scorecam,
                                       shapleycam,
                                       xgradcam,
)
from cnnviz.interpret.attribution.concept_maps import BACKENDS, ConceptRelevance, concept_relevance, concepts, layer_relevance
from cnnviz.interpret.attribution.extremal import extremal
from cnnviz.interpret.attribution.guided import guided_backprop
from cnnviz.interpret.attribution.lrp import COMPOSITES, lrp
from cnnviz.interpret.attribution.occlusion import occlusion
from cnnviz.interpret.attribution.relevance_maximization import relevance_ranking
from cnnviz.interpret.attribution.rise import rise, rise_masks, rise_with_masks
from cnnviz.interpret.attribution.saliency import integrated_gradients, saliency, smoothgrad

__all__ = [
    "captum_adapter", "COMPOSITES", "lrp", "BACKENDS", "ConceptRelevance", "concept_relevance", "concepts",
    "layer_relevance", "relevance_ranking", "extremal",
    "guided_backprop", "occlusion", "rise",
    "rise_masks", "rise_with_masks", "integrated_gradients", "saliency", "smoothgrad",
    "ablationcam", "eigencam", "eigengradcam", "fem", "finercam", "fullgrad", "gradcam", "gradcam_elementwise",
    "gradcam_plusplus", "guided_gradcam", "hirescam", "kpcacam", "layercam", "scorecam", "shapleycam", "xgradcam",
]
