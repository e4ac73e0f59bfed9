"""lgrn.data.pdb: the first-PC projection and the 9-bin repeat factors on a hand-made set, the capped
variant, sampler weights whose expectation equals the repeat counts, and no inf/NaN from empty bins."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import WeightedRandomSampler

from lgrn.data.pdb import pdb_bins, pdb_repeat_factors, pdb_sample_weights, pose_projection

# Scores along one direction; they sum to 0, so the centred scores are these values themselves.
T = np.array([0.0, 0.0, 0.0, 0.0, 0.2, 1.7, -1.8, -3.2, 4.5, -1.4])
# |T| = 0 0 0 0 0.2 1.7 1.8 3.2 4.5 1.4; 9 bins of width 0.5 over [0, 4.5]:
# bin 0 [0, .5): 5 samples -> factor 1; bin 2 [1, 1.5): 1.4 -> round(5/1) = 5;
# bin 3 [1.5, 2): 1.7, 1.8 -> round(5/2) = round(2.5) = 2 (half to even, as Python's round);
# bin 6 [3, 3.5): 3.2 -> 5; bin 8 [4, 4.5]: 4.5 (the maximum, in the closed last bin) -> 5.
EXPECTED = np.array([1, 1, 1, 1, 1, 2, 2, 5, 5, 5])


def hand_shapes(seed: int = 0) -> np.ndarray:
    """Ten 98-point shapes = a base shape + T[i] * a unit direction: rank one, so PC1 is that direction."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 256, 196)
    direction = rng.normal(size=196)
    direction /= np.linalg.norm(direction)
    return (base + T[:, None] * direction).reshape(10, 98, 2)


def test_pose_projection_is_abs_first_pc_score():
    np.testing.assert_allclose(pose_projection(hand_shapes()), np.abs(T), atol=1e-9)
    # sign-invariant: mirrored scores give the same projection
    shapes = hand_shapes()
    mirrored = 2 * shapes.mean(axis=0) - shapes
    np.testing.assert_allclose(pose_projection(mirrored), np.abs(T), atol=1e-9)


def test_repeat_factors_by_hand():
    np.testing.assert_array_equal(pdb_repeat_factors(hand_shapes(), bins=9), EXPECTED)
    assert pdb_repeat_factors(hand_shapes()).dtype.kind == "i"
    assert pdb_repeat_factors(hand_shapes(1), bins=9).sum() == 24
    np.testing.assert_array_equal(pdb_repeat_factors(hand_shapes(), bins=9, cap=3), np.minimum(EXPECTED, 3))


def test_bins_agree_with_numpy_histogram():
    values = np.random.default_rng(0).gamma(1.5, size=500)
    index, counts = pdb_bins(values, 9)
    np.testing.assert_array_equal(counts, np.histogram(values, bins=9)[0])
    np.testing.assert_array_equal(np.bincount(index, minlength=9), counts)


def test_sampler_weights_expectation_equals_repeat_counts():
    shapes = hand_shapes()
    weights = pdb_sample_weights(shapes)
    factors = pdb_repeat_factors(shapes)
    assert weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(weights * factors.sum(), factors)          # expected draws per epoch
    epochs = 4000
    sampler = WeightedRandomSampler(torch.from_numpy(weights), num_samples=int(factors.sum()) * epochs,
                                    replacement=True, generator=torch.Generator().manual_seed(0))
    counts = np.bincount(np.fromiter(iter(sampler), dtype=np.int64), minlength=10) / epochs
    np.testing.assert_allclose(counts, factors, rtol=0.06)


def test_degenerate_sets_give_finite_factors():
    same = np.repeat(hand_shapes()[:1], 5, axis=0)
    np.testing.assert_array_equal(pdb_repeat_factors(same), np.ones(5))
    np.testing.assert_array_equal(pdb_repeat_factors(hand_shapes()[:1]), [1])
    weights = pdb_sample_weights(hand_shapes(), bins=50)                  # many empty bins
    assert np.isfinite(weights).all() and weights.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="is_pdb"):
        pdb_repeat_factors(hand_shapes(), bins=0)
    with pytest.raises(ValueError, match=r"\[N, K, 2\]"):
        pose_projection(np.zeros((4, 196)))
