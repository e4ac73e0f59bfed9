"""Evaluation metrics as pure numpy functions (docs/losses_metrics.md, "Metrics"): per-image NME
normalised by a ground-truth reference distance (inter-ocular or inter-pupil, from the landmark scheme),
failure rate, the CED curve and its AUC in two conventions (the release's 20-point grid and the exact
integral), per-subset results from non-exclusive attribute flags, an NME split into visible and occluded
landmarks, and ``MetricAccumulator`` which gathers batches in order and summarises them.

This module is lgrn's one definition of every evaluation number: the engine's reports, ``--eval_ckpts``,
the demo and ``lgrn export --eval`` all compute through it.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .landmarks import Scheme, get_scheme


def as_scheme(scheme: Scheme | str) -> Scheme:
    """A :class:`Scheme`, or the built-in / file scheme it names ("wflw98", "300w68", "cofw29", a path)."""
    return get_scheme(scheme) if isinstance(scheme, str) else scheme


NORMS = ("inter_ocular", "inter_pupil")
# numpy >= 2 renamed trapz to trapezoid (and scipy removed simps): use whichever this numpy has.
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")
AUC_CONVENTIONS = ("release", "exact")


def _as_array(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensors straight from a model
        x = x.detach().float().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numeric, got {type(x).__name__}") from None


def _check_landmarks(pred: Any, gt: Any, scheme: Scheme) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _as_array(pred, "pred"), _as_array(gt, "gt")
    k = scheme.num_landmarks
    for name, arr in (("pred", pred), ("gt", gt)):
        if arr.ndim != 3 or arr.shape[1:] != (k, 2):
            raise ValueError(f"{name} must be [N, {k}, 2] for scheme {scheme.name!r}, got {arr.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} hold different numbers of images")
    if not np.isfinite(gt).all():
        bad = int(np.nonzero(~np.isfinite(gt).all(axis=(1, 2)))[0][0])
        raise ValueError(f"gt of image {bad} has non-finite coordinates")
    return pred, gt


def reference_distance(gt: Any, scheme: Scheme | str, norm: str = "inter_ocular") -> np.ndarray:
    """Per-image normaliser ``[N]``: distance between the averaged left and right reference points of
    the GROUND TRUTH ``gt`` ``[N, K, 2]`` (300W inter-pupil: centroids of 36-41 and 42-47)."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    scheme = as_scheme(scheme)
    gt = _as_array(gt, "gt")
    left, right = scheme.inter_ocular if norm == "inter_ocular" else scheme.inter_pupil
    return np.linalg.norm(gt[:, list(left)].mean(axis=1) - gt[:, list(right)].mean(axis=1), axis=-1)


def _normalised_errors(pred: Any, gt: Any, scheme: Scheme | str, norm: str) -> np.ndarray:
    """Point errors divided by each image's reference distance, ``[N, K]``."""
    scheme = as_scheme(scheme)
    pred, gt = _check_landmarks(pred, gt, scheme)
    dist = reference_distance(gt, scheme, norm)
    if (dist <= 0).any():
        bad = int(np.nonzero(dist <= 0)[0][0])
        raise ValueError(f"image {bad}: the ground-truth {norm} reference points coincide (distance 0), "
                         "so its NME is undefined")
    return np.linalg.norm(pred - gt, axis=-1) / dist[:, None]


def nme(pred: Any, gt: Any, scheme: Scheme | str, norm: str = "inter_ocular") -> np.ndarray:
    """Per-image normalised mean error ``[N]`` of ``pred`` / ``gt`` ``[N, K, 2]`` (a fraction; x100 for %)."""
    return _normalised_errors(pred, gt, scheme, norm).mean(axis=1)


def nme_by_visibility(pred: Any, gt: Any, visibility: Any, scheme: Scheme | str,
                      norm: str = "inter_ocular") -> tuple[np.ndarray, np.ndarray]:
    """Per-image NME over the visible and over the occluded landmarks, ``([N], [N])``.

    ``visibility`` ``[N, K]`` bool (True = visible). An image with no landmark in a group gets NaN there.
    """
    return _split_by_visibility(_normalised_errors(pred, gt, scheme, norm), visibility)


def _split_by_visibility(errors: np.ndarray, visibility: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-image mean of ``errors [N, K]`` over the visible and over the occluded landmarks."""
    vis = _check_visibility(visibility, errors.shape)

    def group_mean(mask: np.ndarray) -> np.ndarray:
        count = mask.sum(axis=1)
        total = np.where(mask, errors, 0.0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    return group_mean(vis), group_mean(~vis)


def visibility_summary(pred: Any, gt: Any, visibility: Any, scheme: Scheme | str,
                       norm: str = "inter_ocular") -> dict[str, Any]:
    """The NME of a test set on its visible and on its occluded landmarks: ``visible_nme`` /
    ``occluded_nme`` = the mean normalised error over ALL landmarks of that kind, pooled over the images
    (each point error divided by its own image's reference distance; NaN when there is none),
    ``visible_points`` / ``occluded_points`` = how many landmarks that is, ``visible_count`` /
    ``occluded_count`` = how many images have such landmarks. ``visibility`` ``[N, K]`` bool (True =
    visible).

    This is lgrn's one definition of the visible / occluded NME (docs/losses_metrics.md): the reports'
    ``analysis.json``, the demo's table and :class:`MetricAccumulator` use it. Pooling over points means
    an image with many occluded landmarks weighs more than one with a few (unlike the per-image
    :func:`nme_by_visibility`)."""
    errors = _normalised_errors(pred, gt, scheme, norm)
    return _pooled_by_visibility(errors, _check_visibility(visibility, errors.shape))


def _check_visibility(visibility: Any, shape: tuple[int, ...]) -> np.ndarray:
    vis = np.asarray(visibility)
    if vis.shape != shape:
        raise ValueError(f"visibility must be [N, K] = {shape}, got {vis.shape}")
    return vis.astype(bool)


def _pooled_by_visibility(errors: np.ndarray, visible: np.ndarray) -> dict[str, Any]:
    """:func:`visibility_summary` from normalised point errors ``[N, K]`` and a bool mask ``[N, K]``."""
    out: dict[str, Any] = {}
    for key, mask in (("visible", visible), ("occluded", ~visible)):
        out[f"{key}_nme"] = float(errors[mask].mean()) if mask.any() else float("nan")
        out[f"{key}_points"] = int(mask.sum())
        out[f"{key}_count"] = int(mask.any(axis=1).sum())
    return out


def _check_nmes(nmes: Any, threshold: float) -> np.ndarray:
    values = _as_array(nmes, "nmes")
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"nmes must be a non-empty 1-D array of per-image NMEs, got shape {values.shape}")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("nmes must be finite and non-negative")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    return values


def failure_rate(nmes: Any, threshold: float = 0.1) -> float:
    """Fraction of images with NME strictly greater than ``threshold`` (an NME of exactly 0.1 passes)."""
    values = _check_nmes(nmes, threshold)
    return float((values > threshold).mean())


def ced_curve(nmes: Any, threshold: float = 0.1, steps: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution on the grid ``t_k = k * threshold / steps``, ``k = 1..steps``.

    Returns ``(thresholds [steps], fractions [steps])`` with ``fractions[k]`` = share of images with
    NME <= t_k. ``steps=20`` at 0.1 is the release's grid 0.005, 0.010, ..., 0.100.
    """
    values = _check_nmes(nmes, threshold)
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    thresholds = np.linspace(threshold / steps, threshold, steps)
    fractions = (values[None, :] <= thresholds[:, None]).mean(axis=1)
    return thresholds, fractions


def auc(nmes: Any, threshold: float = 0.1, convention: str = "release") -> float:
    """Area under the CED up to ``threshold``, divided by ``threshold``.

    ``"release"``: trapezoid over the release's 20-point grid from ``threshold/20`` to ``threshold`` (the
    [0, threshold/20] strip is dropped, so the maximum is 0.95, and the CED is sampled, not exact).
    ``"exact"``: the exact integral of the empirical CED from 0 to ``threshold``, which is
    ``mean(max(0, 1 - nme / threshold))``; maximum 1.
    """
    if convention == "release":
        thresholds, fractions = ced_curve(nmes, threshold, steps=20)
        return float(_trapezoid(fractions, thresholds) / threshold)
    if convention == "exact":
        values = _check_nmes(nmes, threshold)
        return float(np.clip(1.0 - values / threshold, 0.0, None).mean())
    raise ValueError(f"unknown AUC convention {convention!r}; valid: {', '.join(AUC_CONVENTIONS)}")


def summarize(nmes: Any, threshold: float = 0.1) -> dict[str, float]:
    """``{"nme", "fr", "auc", "auc_exact", "count"}`` of a vector of per-image NMEs; an empty vector
    gives count 0 and NaN values (e.g. a subset with no image)."""
    values = _as_array(nmes, "nmes").reshape(-1)
    if values.size == 0:
        return {"nme": float("nan"), "fr": float("nan"), "auc": float("nan"), "auc_exact": float("nan"),
                "count": 0}
    return {"nme": float(values.mean()), "fr": failure_rate(values, threshold),
            "auc": auc(values, threshold, "release"), "auc_exact": auc(values, threshold, "exact"),
            "count": int(values.size)}


def subset_metrics(nmes: Any, flags: Mapping[str, Any],
                   threshold: float = 0.1) -> dict[str, dict[str, float]]:
    """Per-subset :func:`summarize` from non-exclusive flags (name -> bool ``[N]``): an image belongs to
    every subset whose flag is set, as in the release's ``analyze_wflw.py``."""
    values = _as_array(nmes, "nmes").reshape(-1)
    out = {}
    for name, mask in flags.items():
        mask = np.asarray(mask).astype(bool)
        if mask.shape != values.shape:
            raise ValueError(f"subset {name!r}: flags {mask.shape} do not match {values.size} NMEs")
        out[name] = summarize(values[mask], threshold)
    return out


class MetricAccumulator:
    """Collects batches in order; ``summary()`` gives NME / FR / AUC overall, per subset and split by
    visibility. ``nmes`` and ``names`` are the per-image values in update order."""

    def __init__(self, scheme: Scheme | str, norm: str = "inter_ocular", threshold: float = 0.1) -> None:
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
        self.scheme, self.norm, self.threshold = as_scheme(scheme), norm, threshold
        self._nmes: list[np.ndarray] = []
        self._names: list[str | None] = []
        self._flags: dict[str, list[bool]] = {name: [] for name in self.scheme.subsets}
        self._errors: list[np.ndarray] = []    # normalised point errors [B, K] per batch
        self._visible: list[np.ndarray] = []   # visibility [B, K] per batch (all True without a mask)
        self._has_visibility = False
        self._has_attributes = False

    def __len__(self) -> int:
        return len(self._names)

    @property
    def nmes(self) -> np.ndarray:
        """Per-image NME ``[N]`` in update order."""
        return np.concatenate(self._nmes) if self._nmes else np.zeros(0)

    @property
    def names(self) -> list[str | None]:
        return list(self._names)

    def _batch_flags(self, attributes: Any, batch: int) -> dict[str, np.ndarray]:
        """Attribute flags of one batch: a list of dicts (``Sample.attributes``) or an array ``[B, S]`` in
        ``scheme.subsets`` order (the release's ``*_attr.txt`` columns)."""
        if isinstance(attributes, Sequence) and all(isinstance(a, Mapping) for a in attributes):
            if len(attributes) != batch:
                raise ValueError(f"attributes hold {len(attributes)} entries for a batch of {batch}")
            names = dict.fromkeys(list(self.scheme.subsets) + [k for a in attributes for k in a])
            return {n: np.array([bool(a.get(n, 0)) for a in attributes]) for n in names}
        array = np.asarray(attributes)
        subsets = self.scheme.subsets
        if array.shape != (batch, len(subsets)):
            raise ValueError(f"attributes must be a list of dicts or an array [B, S] = "
                             f"[{batch}, {len(subsets)}] (columns {list(subsets)}), got shape {array.shape}")
        return {n: array[:, i].astype(bool) for i, n in enumerate(subsets)}

    def update(self, pred: Any, gt: Any, names: Sequence[str] | None = None, attributes: Any = None,
               visibility: Any = None) -> np.ndarray:
        """Add a batch ``pred`` / ``gt`` ``[B, K, 2]``; returns its per-image NME ``[B]``.

        ``attributes``: subset flags per image (see ``_batch_flags``); images of a batch without them
        belong to no subset. ``visibility`` ``[B, K]`` bool; a batch without it counts as all visible.
        """
        errors = _normalised_errors(pred, gt, self.scheme, self.norm)
        batch_nme = errors.mean(axis=1)
        batch = batch_nme.shape[0]
        if names is not None and len(names) != batch:
            raise ValueError(f"names hold {len(names)} entries for a batch of {batch}")
        flags = self._batch_flags(attributes, batch) if attributes is not None else {}
        self._has_attributes |= attributes is not None
        if visibility is not None:
            visible = _check_visibility(visibility, errors.shape)
            self._has_visibility = True
        else:
            visible = np.ones(errors.shape, dtype=bool)
        # Validation is done: commit the batch.
        done = len(self._names)
        for name, mask in flags.items():
            self._flags.setdefault(name, [False] * done).extend(mask.tolist())
        for name, values in self._flags.items():
            if name not in flags:
                values.extend([False] * batch)
        self._nmes.append(batch_nme)
        self._names.extend(list(names) if names is not None else [None] * batch)
        self._errors.append(errors)
        self._visible.append(visible)
        return batch_nme

    def summary(self) -> dict[str, Any]:
        """``nme``, ``fr``, ``auc`` (release), ``auc_exact``, ``count``, ``threshold``, ``norm``,
        ``subsets`` (name -> the same keys; empty when no attributes were given; a subset with no image
        has count 0 and NaN values) and, when visibility was
        given, ``visible_nme`` / ``occluded_nme`` / ``visible_points`` / ``occluded_points`` /
        ``visible_count`` / ``occluded_count`` (:func:`visibility_summary`; batches without a mask count
        as fully visible)."""
        if not self._nmes:
            raise ValueError("MetricAccumulator.summary(): no images were added")
        values = self.nmes
        out: dict[str, Any] = summarize(values, self.threshold)
        out.update(threshold=self.threshold, norm=self.norm)
        flags = {n: np.array(f, dtype=bool) for n, f in self._flags.items()} if self._has_attributes else {}
        out["subsets"] = subset_metrics(values, flags, self.threshold)
        if self._has_visibility:
            out.update(_pooled_by_visibility(np.concatenate(self._errors), np.concatenate(self._visible)))
        return out
