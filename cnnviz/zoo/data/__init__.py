"""Data: images from files, folders and samples; image collections (folders, data sets, tensors); the
IDX data sets and their splits; Fashion-MNIST scenes; images with concept masks (for dissection); planted
shortcuts (a mark stamped on chosen images); ImageNet's class names. Imports zoo's core (and the handle's channel
matching); never a model.

Example:
    >>> from cnnviz.zoo.data import load_image
    >>> load_image("chelsea").shape
    torch.Size([3, 300, 451])
"""

from cnnviz.zoo.data.datasets import (DATASETS, FASHION_MEAN, FASHION_MNIST_CLASSES, FASHION_STD, Splits, TensorData,
                                      has_idx_files, load_dataset, read_idx_split)
from cnnviz.zoo.data.image_data import DataSource, ImageFiles, TensorImages, as_image, image_name, open_dataset
from cnnviz.zoo.data.imagenet import IMAGENET_CLASSES
from cnnviz.zoo.data.masked_images import MaskedImages, open_masked
from cnnviz.zoo.data.images import (IMAGE_SUFFIXES, SAMPLES, expand_sources, load_image, load_images, pillow_refusals,
                                    sample_names, save_array, save_image, scene_names)
from cnnviz.zoo.data.scenes import Scenes, fashion_scenes, paste_scenes
from cnnviz.zoo.data.shortcuts import Frame, Mark, plant, stamp

__all__ = [
    "MaskedImages", "open_masked",
    "DATASETS", "DataSource", "FASHION_MEAN", "Frame", "FASHION_MNIST_CLASSES", "FASHION_STD", "IMAGENET_CLASSES",
    "IMAGE_SUFFIXES", "ImageFiles", "Mark", "SAMPLES", "Scenes", "Splits", "TensorData", "TensorImages", "as_image",
    "expand_sources", "fashion_scenes", "has_idx_files", "image_name", "load_dataset", "load_image", "load_images",
    "open_dataset", "paste_scenes", "pillow_refusals", "plant", "read_idx_split", "sample_names", "save_array",
    "save_image", "scene_names", "stamp",
]
