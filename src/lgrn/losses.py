"""Training losses for landmark regression (docs/losses_metrics.md, "Losses"): the release's Soft Wing (``WiderWing``), Wing,
Smooth Wing, L1/L2/SmoothL1/MSE, Euclidean, NME and NormalizedWiderWing losses as pure functions of
``pred``/``target`` tensors ``[B, K, 2]`` in pixels, the relative-location (Laplacian) loss, and
``build_criterion`` which assembles ``task_weight * task + laplace_weight * relative`` from a config's
``train_param`` exactly as the released ``fld.py`` does. Every loss accepts optional per-landmark
``weights`` ``[B, K]`` (e.g. visibility); ``None`` reproduces the release's reductions exactly. Losses are
computed in float32 even under bf16 autocast.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from .landmarks import Scheme, laplacian_matrix

# Keyword arguments of the release's Soft Wing; the relative-location loss is built from these.
SOFT_WING_KWARGS = ("thres1", "thres2", "curvature")


# ----------------------------------------------------------------------------- elementwise curves
def soft_wing(x: Tensor, thres1: float = 2.0, thres2: float = 20.0, curvature: float = 2.0) -> Tensor:
    """Soft Wing (the release's ``WiderWing``) of residuals ``x`` (any shape), elementwise.

    ``|x|`` below ``thres1``, else ``thres2 * ln(1 + |x|/curvature) + B`` with
    ``B = thres1 - thres2 * ln(1 + thres1/curvature)`` so the curve is continuous at ``thres1``.
    """
    a = x.abs()
    offset = thres1 - thres2 * math.log(1.0 + thres1 / curvature)
    return torch.where(a < thres1, a, thres2 * torch.log1p(a / curvature) + offset)


def wing(x: Tensor, width: float = 5.0, curvature: float = 0.5) -> Tensor:
    """Wing loss (Feng et al. 2018) elementwise: ``w ln(1 + |x|/eps)`` below ``w``, else ``|x| - C``
    with ``C = w - w ln(1 + w/eps)``."""
    a = x.abs()
    c = width - width * math.log(1.0 + width / curvature)
    return torch.where(a < width, width * torch.log1p(a / curvature), a - c)


def smooth_wing(x: Tensor, thres1: float = 2.0, thres2: float = 20.0, curvature: float = 2.0) -> Tensor:
    """Smooth Wing elementwise: ``|x|`` (< t1), ``t2 ln(1 + |x|/eps) + B`` (t1..t2), ``|x| - C`` (>= t2),
    ``B`` as in Soft Wing and ``C = t2 - t2 ln(1 + t2/eps) - B`` (continuous at both thresholds)."""
    a = x.abs()
    b = thres1 - thres2 * math.log(1.0 + thres1 / curvature)
    c = thres2 - thres2 * math.log(1.0 + thres2 / curvature) - b
    middle = thres2 * torch.log1p(a / curvature) + b
    return torch.where(a < thres1, a, torch.where(a < thres2, middle, a - c))


def smooth_l1(x: Tensor, beta: float = 1.0) -> Tensor:
    """Huber-style smooth L1 (torch's ``SmoothL1Loss`` with ``beta``), elementwise."""
    a = x.abs()
    return torch.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)


# ----------------------------------------------------------------------------- reductions
def _check_pair(pred: Tensor, target: Tensor, weights: Tensor | None) -> None:
    if pred.shape != target.shape or pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"losses expect pred and target [B, K, 2] of equal shape, got "
                         f"{tuple(pred.shape)} and {tuple(target.shape)}")
    if weights is not None and tuple(weights.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"weights must be [B, K] = {tuple(pred.shape[:2])}, got {tuple(weights.shape)}")


def _mean(values: Tensor, weights: Tensor | None, dims: tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``values`` ``[B, K]`` or ``[B, K, 2]`` over ``dims`` (all when None); with per-landmark
    ``weights`` ``[B, K]`` a weighted mean (a landmark of weight 0 does not count)."""
    if weights is None:
        return values.mean() if dims is None else values.mean(dim=dims)
    w = weights.to(values.dtype)
    if values.dim() == 3:
        w = w.unsqueeze(-1).expand_as(values)
    if dims is None:
        return (values * w).sum() / w.sum().clamp_min(1e-12)
    return (values * w).sum(dim=dims) / w.sum(dim=dims).clamp_min(1e-12)


def _float32(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """Run a loss in float32 with autocast off: bf16 residuals of a few pixels lose the precision
    Soft Wing's log branch needs, and the Laplacian matmul would otherwise run in bf16."""
    def wrapped(pred: Tensor, target: Tensor, weights: Tensor | None = None, **kwargs: Any) -> Tensor:
        _check_pair(pred, target, weights)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            return fn(pred.float(), target.float(), weights, **kwargs)
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


def _normaliser(target: Tensor, left: tuple[int, ...], right: tuple[int, ...]) -> Tensor:
    """Per-sample distance ``[B]`` between the averaged left and right reference points of the target."""
    return torch.linalg.vector_norm(target[:, list(left)].mean(1) - target[:, list(right)].mean(1), dim=-1)


# ----------------------------------------------------------------------------- losses [B, K, 2] -> scalar
@_float32
def soft_wing_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None, thres1: float = 2.0,
                   thres2: float = 20.0, curvature: float = 2.0) -> Tensor:
    """Soft Wing averaged over ALL coordinates (batch x 2K), as released (``WiderWing``)."""
    return _mean(soft_wing(target - pred, thres1, thres2, curvature), weights)


@_float32
def wing_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None, width: float = 5.0,
              curvature: float = 0.5) -> Tensor:
    """Wing loss averaged over all coordinates."""
    return _mean(wing(target - pred, width, curvature), weights)


@_float32
def smooth_wing_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None, thres1: float = 2.0,
                     thres2: float = 20.0, curvature: float = 2.0) -> Tensor:
    """Smooth Wing averaged over all coordinates."""
    return _mean(smooth_wing(target - pred, thres1, thres2, curvature), weights)


@_float32
def l1_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean absolute coordinate error (torch ``L1Loss``)."""
    return _mean((target - pred).abs(), weights)


@_float32
def mse_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean squared coordinate error (torch ``MSELoss``)."""
    return _mean((target - pred) ** 2, weights)


@_float32
def smooth_l1_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None, beta: float = 1.0) -> Tensor:
    """Smooth L1 averaged over all coordinates (torch ``SmoothL1Loss``)."""
    return _mean(smooth_l1(target - pred, beta), weights)


@_float32
def l2_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """The release's L2: per sample ``sqrt(mean over 2K of squared differences)``, then the batch mean."""
    per_sample_mse = _mean((target - pred) ** 2, weights, dims=(1, 2))
    # sqrt via a norm-style guard: d/dx sqrt at 0 is inf, which would turn a perfect sample into NaN grads.
    return torch.where(per_sample_mse > 0, per_sample_mse.clamp_min(1e-30).sqrt(),
                       torch.zeros_like(per_sample_mse)).mean()


@_float32
def euclidean_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean over all points of the per-point Euclidean distance."""
    return _mean(torch.linalg.vector_norm(target - pred, dim=-1), weights)


@_float32
def nme_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None, left: tuple[int, ...] = (0,),
             right: tuple[int, ...] = (1,), image_size: float = 256.0) -> Tensor:
    """Per-sample mean point distance x ``image_size / d`` (``d`` = GT distance between the averaged
    ``left`` and ``right`` points, inter-ocular in the release), then the batch mean."""
    per_sample = _mean(torch.linalg.vector_norm(target - pred, dim=-1), weights, dims=(1,))
    return (per_sample * image_size / _normaliser(target, left, right)).mean()


@_float32
def normalized_soft_wing_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None,
                              left: tuple[int, ...] = (0,), right: tuple[int, ...] = (1,),
                              image_size: float = 256.0, thres1: float = 2.0, thres2: float = 20.0,
                              curvature: float = 2.0) -> Tensor:
    """The release's ``NormalizedWiderWing``: Soft Wing per coordinate, per-sample mean, times
    ``image_size / d`` (GT inter-ocular distance), then the batch mean."""
    per_sample = _mean(soft_wing(target - pred, thres1, thres2, curvature), weights, dims=(1, 2))
    return (per_sample * image_size / _normaliser(target, left, right)).mean()


@_float32
def relative_location_loss(pred: Tensor, target: Tensor, weights: Tensor | None = None,
                           laplacian: Tensor | None = None, thres1: float = 2.0, thres2: float = 20.0,
                           curvature: float = 2.0) -> Tensor:
    """Soft Wing on ``L (P_pred - P_gt)`` with ``laplacian`` ``L`` ``[K, K]`` (docs/losses_metrics.md, "Losses").

    The release multiplies pred and target by ``L`` separately; ``L`` is linear, so this is the same
    value with one matmul fewer. Row ``i`` of the result is weighted by ``weights[:, i]``.
    """
    if laplacian is None:
        raise ValueError("relative_location_loss needs the Laplacian matrix [K, K]")
    k = pred.shape[1]
    if tuple(laplacian.shape) != (k, k):
        raise ValueError(f"Laplacian is {tuple(laplacian.shape)} but the landmarks have K = {k}")
    b = pred.shape[0]
    # One [K, K] x [K, 2B] GEMM instead of B broadcast [K, K] x [K, 2] products (7x faster on CPU).
    diff = (pred - target).transpose(0, 1).reshape(k, 2 * b)
    relative = (laplacian.to(device=pred.device, dtype=torch.float32) @ diff).reshape(k, b, 2).transpose(0, 1)
    return _mean(soft_wing(relative, thres1, thres2, curvature), weights)


# ----------------------------------------------------------------------------- modules and builder
class PointLoss(nn.Module):
    """``nn.Module`` wrapper of one of the functional losses above with fixed keyword arguments."""

    def __init__(self, fn: Callable[..., Tensor], **kwargs: Any) -> None:
        super().__init__()
        self.fn = fn
        self.kwargs = kwargs

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        return self.fn(pred, target, weights, **self.kwargs)

    def extra_repr(self) -> str:
        return f"{self.fn.__name__}, {self.kwargs}"


class RelativeLocationLoss(nn.Module):
    """Soft Wing on ``L (P_pred - P_gt)``; ``L`` ``[K, K]`` is a registered buffer (moves with ``.to``)."""

    laplacian: Tensor

    def __init__(self, laplacian: np.ndarray | Tensor, thres1: float = 2.0, thres2: float = 20.0,
                 curvature: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("laplacian", torch.as_tensor(np.asarray(laplacian), dtype=torch.float32))
        self.kwargs = dict(thres1=thres1, thres2=thres2, curvature=curvature)

    @classmethod
    def from_scheme(cls, scheme: Scheme, **kwargs: float) -> "RelativeLocationLoss":
        """The Laplacian of the scheme's relative-location graph (98 points: ``98pts_top3``)."""
        return cls(laplacian_matrix(scheme.laplacian_edges(), scheme.num_landmarks), **kwargs)

    def forward(self, pred: Tensor, target: Tensor, weights: Tensor | None = None) -> Tensor:
        return relative_location_loss(pred, target, weights, laplacian=self.laplacian, **self.kwargs)


# criterion.type -> (function, the config kwargs it takes). Names and kwargs as released.
LOSSES: dict[str, tuple[Callable[..., Tensor], tuple[str, ...]]] = {
    "WiderWing": (soft_wing_loss, SOFT_WING_KWARGS),
    "Wing": (wing_loss, ("width", "curvature")),
    "SmoothWing": (smooth_wing_loss, SOFT_WING_KWARGS),
    "L1": (l1_loss, ()),
    "L2": (l2_loss, ()),
    "SmoothL1": (smooth_l1_loss, ("beta",)),
    "MSE": (mse_loss, ()),
    "Euclidean": (euclidean_loss, ()),
    "NME": (nme_loss, ("num_points", "image_size")),
    "NormalizedWiderWing": (normalized_soft_wing_loss, SOFT_WING_KWARGS + ("num_points", "image_size")),
}
_NORMALISED = ("NME", "NormalizedWiderWing")


class Criterion(nn.Module):
    """``criterion(pred [B,K,2], target [B,K,2], weights=None) -> (total, {"task", "laplace"})``.

    ``total = task + laplace`` where ``task = task_weight * task_loss`` and ``laplace = laplace_weight *
    relative_loss`` (the dict holds the weighted terms, as the release logs them).
    """

    def __init__(self, type_name: str, task: nn.Module, relative: RelativeLocationLoss,
                 task_weight: float = 1.0, laplace_weight: float = 1.0) -> None:
        super().__init__()
        # ``criterion.type`` names the task loss as in the release's config (it shadows the rarely used
        # nn.Module.type(dst_type) cast, which a loss without parameters never needs).
        self.type = type_name
        self.task = task
        self.relative = relative
        self.task_weight = float(task_weight)
        self.laplace_weight = float(laplace_weight)

    def forward(self, pred: Tensor, target: Tensor,
                weights: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        k = self.relative.laplacian.shape[0]
        # The release's models emit interleaved [B, 2K] vectors; accept them too.
        if pred.dim() == 2 and pred.shape[1] == 2 * k:
            pred = pred.reshape(pred.shape[0], k, 2)
        if target.dim() == 2 and target.shape[1] == 2 * k:
            target = target.reshape(target.shape[0], k, 2)
        if pred.dim() != 3 or pred.shape[1] != k:
            raise ValueError(f"criterion expects pred [B, {k}, 2] (the scheme's K), got {tuple(pred.shape)}")
        task = self.task_weight * self.task(pred, target, weights)
        laplace = self.laplace_weight * self.relative(pred, target, weights)
        return task + laplace, {"task": task, "laplace": laplace}


def _number(value: Any, key: str, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"'train_param.criterion.kwargs.{key}' must be a number, got {value!r}")
    if positive and not value > 0:
        raise ValueError(f"'train_param.criterion.kwargs.{key}' must be > 0, got {value!r}")
    return float(value)


def build_criterion(train_param: dict[str, Any], scheme: Scheme) -> Criterion:
    """The training criterion from a resolved config's ``train_param`` (docs/losses_metrics.md, "Losses").

    ``criterion.type`` picks the task loss (``WiderWing``, ``Wing``, ``SmoothWing``, ``L1``, ``L2``,
    ``SmoothL1``, ``MSE``, ``Euclidean``, ``NME``, ``NormalizedWiderWing``); ``criterion.kwargs`` go to it,
    and, as released, the same kwargs build the relative-location loss's Soft Wing (only its
    ``thres1``/``thres2``/``curvature`` are used there; the release would crash on any other key). The
    Laplacian comes from ``scheme.laplacian_edges()``, so it follows the configured scheme.
    """
    spec = train_param.get("criterion") or {}
    type_name = spec.get("type", "WiderWing")
    kwargs = dict(spec.get("kwargs") or {})
    if type_name not in LOSSES:
        raise ValueError(f"unknown 'train_param.criterion.type' {type_name!r}; valid: {', '.join(LOSSES)}")
    num_kpts = train_param.get("num_kpts")
    if num_kpts is not None and num_kpts != scheme.num_landmarks:
        raise ValueError(f"'train_param.num_kpts' is {num_kpts} but scheme {scheme.name!r} has "
                         f"{scheme.num_landmarks} landmarks")
    fn, own_keys = LOSSES[type_name]
    allowed = tuple(dict.fromkeys(own_keys + SOFT_WING_KWARGS))
    for key in kwargs:
        if key not in allowed:
            raise ValueError(f"unknown key 'train_param.criterion.kwargs.{key}' for criterion {type_name!r}; "
                             f"valid: {', '.join(allowed)}")
    for key, value in kwargs.items():
        kwargs[key] = _number(value, key)
    task_kwargs = {k: v for k, v in kwargs.items() if k in own_keys}
    if type_name in _NORMALISED:
        n = task_kwargs.pop("num_points", scheme.num_landmarks)
        if int(n) != scheme.num_landmarks:
            raise ValueError(f"'train_param.criterion.kwargs.num_points' is {int(n)} but scheme "
                             f"{scheme.name!r} has {scheme.num_landmarks} landmarks")
        task_kwargs["left"], task_kwargs["right"] = scheme.inter_ocular
    if type_name == "SmoothWing" and kwargs.get("thres1", 2.0) > kwargs.get("thres2", 20.0):
        raise ValueError("'train_param.criterion.kwargs': SmoothWing needs thres1 <= thres2")
    relative = RelativeLocationLoss.from_scheme(
        scheme, **{k: v for k, v in kwargs.items() if k in SOFT_WING_KWARGS})
    return Criterion(type_name, PointLoss(fn, **task_kwargs), relative,
                     task_weight=train_param.get("task_weight", 1.0),
                     laplace_weight=train_param.get("laplace_weight", 1.0))
