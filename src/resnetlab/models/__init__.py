"""Model families and the registry. Importing this package registers every model."""

from resnetlab.models import resnet, signs  # noqa: F401  (registers the models)
from resnetlab.models.build import build_model, check_input_size
from resnetlab.models.registry import ModelSpec, create_model, get_spec, list_models, register_model
from resnetlab.models.resnet import (
    ResNet,
    check_cifar_depth,
    cifar_plain,
    cifar_resnet,
    imagenet_resnet,
)
from resnetlab.models.signs import ConvolutionalBlock, IdentityBlock, SignsResNet50

__all__ = [
    "ConvolutionalBlock",
    "IdentityBlock",
    "ModelSpec",
    "ResNet",
    "SignsResNet50",
    "build_model",
    "check_cifar_depth",
    "check_input_size",
    "cifar_plain",
    "cifar_resnet",
    "create_model",
    "get_spec",
    "imagenet_resnet",
    "list_models",
    "register_model",
]
