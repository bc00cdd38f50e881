"""Models: the registry, the seed CNNs, the spec-string builder, pretrained backbones and `summary`."""

from cnnlab.models.backbones import Backbone, get_backbone
from cnnlab.models.registry import create_model, list_models, register_model
from cnnlab.models.sequential import build_sequential
from cnnlab.models.summary import Summary, summary

__all__ = ["Backbone", "Summary", "build_sequential", "create_model", "get_backbone", "list_models",
           "register_model", "summary"]
