"""Networks and filters of the white-box recipe.

To add a network: one file per network, a ``nn.Module`` with shape checks that raise
``ValueError`` naming the expected shape, exported here, with a parameter-count test.
"""
from models.discriminator import Discriminator
from models.generator import Generator
from models.guided_filter import GuidedFilter, box_filter, guided_filter
from models.hed import HEDEdges, HEDVGG16Features
from models.vgg import VGG19Features, build_vgg, resolve_vgg_weights

__all__ = ["Generator", "Discriminator", "VGG19Features", "guided_filter", "GuidedFilter",
           "box_filter", "build_vgg", "resolve_vgg_weights", "HEDVGG16Features", "HEDEdges"]
