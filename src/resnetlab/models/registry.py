"""The one list of model names: the CLI, the tests and the experiments all read it."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from resnetlab.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        name: the registry name (``resnet20``).
        builder: returns the ``nn.Module``; takes ``num_classes`` and keyword overrides.
        family: ``"imagenet"``, ``"cifar"`` or ``"signs"``.
        input_size: the (H, W) the model was designed for (224x224, 32x32, 64x64).
        num_classes: the default number of classes.
        description: one line for listings.
        fixed_input_size: the model takes ``input_size`` images only (its classifier's width
            depends on the final map's size, as the course's Keras net does); the others pool
            globally and take any size.
    """

    name: str
    builder: Callable[..., nn.Module]
    family: str
    input_size: tuple[int, int]
    num_classes: int
    description: str
    fixed_input_size: bool = False


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str | None = None,
    *,
    family: str,
    input_size: tuple[int, int],
    num_classes: int,
    description: str | None = None,
    fixed_input_size: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator that adds a builder to the registry; a name registered twice raises.

    Args:
        name: the registry name; by default the builder's own (``def resnet56(...)``).
        family: ``"imagenet"``, ``"cifar"`` or ``"signs"``.
        input_size: the (H, W) the model was designed for.
        num_classes: the builder's default number of classes.
        description: one line for listings; by default the first line of the docstring.
        fixed_input_size: the model takes ``input_size`` images only.
    """

    def add(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model name {key!r} is already registered")
        text = description or (builder.__doc__ or key).strip().splitlines()[0].rstrip(".")
        _REGISTRY[key] = ModelSpec(
            key, builder, family, tuple(input_size), num_classes, text, fixed_input_size
        )
        return builder

    return add


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` is a shell-style filter (``"resnet*"``)."""
    names = sorted(_REGISTRY, key=_natural_key)
    return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; an unknown name raises with the closest matches."""
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"unknown model {name!r}{hint} (`resnetlab list` or list_models() shows all "
            f"{len(_REGISTRY)})"
        )
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    *,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    **overrides: object,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from ``list_models()``.
        num_classes: size of the classifier; the model's default if ``None``.
        features_only: return a ``FeatureExtractor`` (timm's surface): its forward gives the
            feature maps of the stages in ``out_indices`` (0: the stem, 1..: the stages), and
            its ``feature_info`` their channels and reductions.
        out_indices: the stages a ``features_only`` model returns; default all.
        **overrides: constructor arguments of ``ResNet`` (``shortcut="B"``, ``residual=False``,
            ``preact=True``, ``zero_init_residual=True``, ``stride_at="paper"``, ``in_channels=1``,
            ``shortcut_pad="split"``, or ``depth`` for the generic CIFAR builders).

    Returns:
        The model, in training mode, freshly initialised.
    """
    spec = get_spec(name)
    classes = spec.num_classes if num_classes is None else num_classes
    if out_indices is not None and not features_only:
        raise ConfigError("out_indices applies to features_only=True models only")
    try:
        model = spec.builder(num_classes=classes, **overrides)
    except TypeError as err:
        # "unexpected": the builder has no such argument; "multiple values": it fixes it itself
        # (the CIFAR builders set widths and stem).
        if not any(m in str(err) for m in ("unexpected keyword argument", "multiple values")):
            raise
        raise ConfigError(
            f"model {name!r} does not take {err.args[0].split('argument ')[-1]}"
        ) from None
    if features_only:
        from resnetlab.models.features import FeatureExtractor

        return FeatureExtractor(model, out_indices)
    return model


def _natural_key(name: str) -> tuple:
    """Sort ``resnet20`` before ``resnet110``."""
    head = name.rstrip("0123456789")
    tail = name[len(head) :]
    return (head, int(tail) if tail else -1, name)
