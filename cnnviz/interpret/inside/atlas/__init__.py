"""The neuron atlas: per channel, the dataset images and patches that excite it most (:mod:`.scan`, one pass over the dataset),
fed by :mod:`.feed`, ranked by :mod:`.topk`, shown through :mod:`.examples`."""

from cnnviz.interpret.inside.atlas.examples import ChannelExamples, channel_examples
from cnnviz.interpret.inside.atlas.scan import Atlas, neuron_atlas
from cnnviz.interpret.inside.atlas.topk import TopK

__all__ = ["Atlas", "ChannelExamples", "TopK", "channel_examples", "neuron_atlas"]
