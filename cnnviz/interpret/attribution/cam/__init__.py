"""The CAM family over one core (:mod:`interpret.attribution.cam.core`), one file by what a variant needs:
gradients (:mod:`.gradcam`, :mod:`.gradient_variants`, :mod:`.fullgrad`), activations only
(:mod:`.activation_variants`) or extra forward passes (:mod:`.forward_variants`)."""

from cnnviz.interpret.attribution.cam.activation_variants import eigencam, fem, kpcacam
from cnnviz.interpret.attribution.cam.core import LayerArg, Reshape, cam_layers, class_activation_maps, to_grid
from cnnviz.interpret.attribution.cam.forward_variants import ablationcam, scorecam
from cnnviz.interpret.attribution.cam.fullgrad import fullgrad
from cnnviz.interpret.attribution.cam.gradcam import gradcam, guided_gradcam
from cnnviz.interpret.attribution.cam.gradient_variants import (
                                                         eigengradcam,
                                                         finercam,
                                                         gradcam_elementwise,
                                                         gradcam_plusplus,
                                                         hirescam,
                                                         layercam,
                                                         shapleycam,
                                                         xgradcam,
)

__all__ = [
    "LayerArg", "Reshape", "cam_layers", "class_activation_maps", "to_grid",
    "ablationcam", "eigencam", "eigengradcam", "fem", "finercam", "fullgrad", "gradcam", "gradcam_elementwise",
    "gradcam_plusplus", "guided_gradcam", "hirescam", "kpcacam", "layercam", "scorecam", "shapleycam", "xgradcam",
]
