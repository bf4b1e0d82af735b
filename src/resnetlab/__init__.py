"""resnetlab: residual networks (He et al. 2015, arXiv:1512.03385) from the paper to production."""

from resnetlab.errors import CheckpointError, ConfigError, DataError, UserError
from resnetlab.models import ResNet, create_model, get_spec, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "ResNet",
    "UserError",
    "__version__",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
]
