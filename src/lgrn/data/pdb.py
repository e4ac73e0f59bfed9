"""Pose-based data balancing (PDB, docs/augmentation.md; docs/deviations.md, release bug 15), numpy only.

The release projects the raw training shapes on their first principal component, takes the absolute
value, bins it into ``bins`` equal-width bins over [min, max] and repeats every sample
round(max_count / bin_count) times. Here: :func:`pdb_repeat_factors` (the release, ``pdb_mode: repeat``),
``cap`` for ``pdb_mode: capped`` (factors at most ``pdb_cap``) and :func:`pdb_sample_weights` for a
``WeightedRandomSampler`` (``pdb_mode: sampler``) whose expected draws per sample equal the repeat
factors. Empty bins are never divided by, so there is no inf/NaN anywhere.
"""
from __future__ import annotations

import numpy as np

DEFAULT_BINS = 9


def _as_shapes(shapes: np.ndarray) -> np.ndarray:
    shapes = np.asarray(shapes, dtype=np.float64)
    if shapes.ndim != 3 or shapes.shape[2] != 2 or shapes.shape[0] == 0:
        raise ValueError(f"PDB expects shapes [N, K, 2] with N >= 1, got {shapes.shape}")
    if not np.isfinite(shapes).all():
        raise ValueError("PDB: shapes contain NaN or inf")
    return shapes


def pose_projection(shapes: np.ndarray) -> np.ndarray:
    """``[N, K, 2]`` raw shapes -> ``[N]`` |score on the first principal component| of the centred
    shape vectors (interleaved x0, y0, x1, ...). The sign of a principal component is arbitrary, the
    absolute value is not. One shape (or identical shapes) projects to 0."""
    shapes = _as_shapes(shapes)
    x = shapes.reshape(shapes.shape[0], -1)
    x = x - x.mean(axis=0)
    if not np.any(x):
        return np.zeros(x.shape[0])
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return np.abs(x @ vt[0])


def pdb_bins(values: np.ndarray, bins: int = DEFAULT_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(bin index per value ``[N]``, count per bin ``[bins]``) for ``bins`` equal-width bins over
    [min, max], assigned as ``numpy.histogram`` does (half-open bins, the last one closed)."""
    if int(bins) != bins or bins < 1:
        raise ValueError(f"PDB: the number of bins (train_param.is_pdb) must be an integer >= 1, got {bins!r}")
    values = np.asarray(values, dtype=np.float64)
    _, edges = np.histogram(values, bins=int(bins))
    # numpy's own assignment: bin i holds edges[i] <= v < edges[i + 1], the last bin also its right edge.
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, int(bins) - 1)
    return index, np.bincount(index, minlength=int(bins))


def pdb_repeat_factors(shapes: np.ndarray, bins: int = DEFAULT_BINS, cap: int | None = None) -> np.ndarray:
    """``[N]`` int repeat factor per sample: round(max_count / count of its bin) (round half to even,
    as Python's round), at least 1; ``cap`` bounds it (``pdb_mode: capped``)."""
    index, counts = pdb_bins(pose_projection(shapes), bins)
    safe = np.where(counts > 0, counts, 1)          # empty bins hold no sample; avoid 0-division
    per_bin = np.maximum(np.rint(counts.max() / safe), 1).astype(np.int64)
    factors = per_bin[index]
    if cap is not None:
        if cap < 1:
            raise ValueError(f"PDB: pdb_cap must be >= 1, got {cap}")
        factors = np.minimum(factors, int(cap))
    return factors


def pdb_sample_weights(shapes: np.ndarray, bins: int = DEFAULT_BINS) -> np.ndarray:
    """``[N]`` float64 sampling probabilities (sum 1) proportional to the repeat factors: drawing
    ``sum(pdb_repeat_factors(...))`` times with replacement (``WeightedRandomSampler``) gives each
    sample its repeat factor as expected number of draws per epoch."""
    return weights_from_factors(pdb_repeat_factors(shapes, bins))


def weights_from_factors(factors: np.ndarray) -> np.ndarray:
    """Repeat factors ``[N]`` -> sampling probabilities ``[N]`` (float64, sum 1)."""
    factors = np.asarray(factors, dtype=np.float64)
    return factors / factors.sum()
