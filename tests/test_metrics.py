"""Metrics against hand-made cases (docs/losses_metrics.md, "Metrics"): NME normalised by the ground truth (300W inter-pupil =
eye centroids), strict failure rate, the release's and the exact AUC on a hand-computed CED, subsets,
the visible/occluded split and the accumulator."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lgrn.landmarks import get_scheme
from lgrn.metrics import (MetricAccumulator, auc, ced_curve, failure_rate, nme, nme_by_visibility, visibility_summary,
                          reference_distance, subset_metrics)

WFLW = get_scheme("wflw98")
W300 = get_scheme("300w68")


def _wflw_face(n: int = 1) -> np.ndarray:
    """[n, 98, 2] faces with the outer eye corners 60 / 72 exactly 100 px apart."""
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 256, size=(n, 98, 2))
    gt[:, 60] = [50.0, 100.0]
    gt[:, 72] = [150.0, 100.0]
    return gt


def test_nme_uniform_offset_and_gt_normaliser():
    gt = _wflw_face(2)
    pred = gt + np.array([3.0, 4.0])  # every point 5 px off, d = 100 -> 0.05
    pred[1] = gt[1]
    pred[1, 0] += [30.0, 40.0]  # one point 50 px off -> 50 / 98 / 100
    assert nme(pred, gt, WFLW).tolist() == pytest.approx([0.05, 0.5 / 98])
    # the normaliser comes from the ground truth: moving predicted eye corners does not rescale it
    pred2 = gt.copy()
    pred2[0, 72] += [0.0, 98.0]
    assert nme(pred2, gt, WFLW)[0] == pytest.approx(98.0 / 98 / 100)
    # inter-pupil for WFLW: points 96 / 97
    gt[:, 96], gt[:, 97] = [60.0, 100.0], [140.0, 100.0]
    assert nme(gt + [3.0, 4.0], gt, WFLW, norm="inter_pupil").tolist() == pytest.approx([5 / 80] * 2)
    # torch tensors straight from a model are accepted
    assert nme(torch.tensor(gt + [3.0, 4.0]), torch.tensor(gt), WFLW)[0] == pytest.approx(0.05)


def test_300w_inter_pupil_uses_eye_centroids():
    gt = np.random.default_rng(1).uniform(0, 200, size=(1, 68, 2))
    left = [(0, 20), (10, 15), (20, 15), (30, 20), (20, 25), (10, 25)]  # 36..41, centroid (15, 20)
    right = [(60, 20), (70, 15), (80, 15), (90, 20), (80, 25), (70, 25)]  # 42..47, centroid (75, 20)
    gt[0, 36:42], gt[0, 42:48] = left, right
    assert reference_distance(gt, W300, "inter_pupil").tolist() == pytest.approx([60.0])
    assert reference_distance(gt, W300, "inter_ocular").tolist() == pytest.approx([90.0])  # corners 36 / 45
    pred = gt + [3.6, 4.8]  # 6 px everywhere
    assert nme(pred, gt, W300, "inter_pupil")[0] == pytest.approx(0.1)
    assert nme(pred, gt, W300, "inter_ocular")[0] == pytest.approx(6 / 90)


def test_nme_errors_are_clear():
    gt = _wflw_face(2)
    with pytest.raises(ValueError, match=r"\[N, 98, 2\] for scheme 'wflw98'"):
        nme(gt[:, :68], gt[:, :68], WFLW)
    with pytest.raises(ValueError, match="different numbers of images"):
        nme(gt[:1], gt, WFLW)
    with pytest.raises(ValueError, match="unknown norm 'iod'"):
        nme(gt, gt, WFLW, norm="iod")
    bad = gt.copy()
    bad[1, 72] = bad[1, 60]
    with pytest.raises(ValueError, match="image 1: .*coincide"):
        nme(gt, bad, WFLW)
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="gt of image 1 has non-finite"):
        nme(gt, bad, WFLW)


def test_failure_rate_is_strict():
    nmes = [0.05, 0.1, 0.1000001, 0.3]
    assert failure_rate(nmes) == 0.5  # exactly 0.1 is not a failure
    assert failure_rate(nmes, threshold=0.08) == 0.75
    with pytest.raises(ValueError, match="non-empty 1-D"):
        failure_rate([])
    with pytest.raises(ValueError, match="non-negative"):
        failure_rate([0.1, -0.2])


def test_ced_and_auc_release_vs_exact_hand_computed():
    nmes = [0.0, 0.012, 0.047, 0.099, 0.2]
    thresholds, ced = ced_curve(nmes)
    assert np.array_equal(thresholds, np.linspace(0.005, 0.1, 20))  # the release's grid
    # CED: 0.2 at t = .005, .010; 0.4 from .015 to .045; 0.6 from .050 to .095; 0.8 at .100
    assert ced.tolist() == pytest.approx([0.2] * 2 + [0.4] * 7 + [0.6] * 10 + [0.8])
    # trapezoids (width .005): 0.2 + 0.3 + 6 x 0.4 + 0.5 + 9 x 0.6 + 0.7 = 9.5 -> 9.5 x .005 / 0.1
    assert auc(nmes) == pytest.approx(0.475)
    # exact: mean of max(0, 1 - nme / 0.1) = (1 + 0.88 + 0.53 + 0.01 + 0) / 5
    assert auc(nmes, convention="exact") == pytest.approx(0.484)
    # extremes: the release's convention tops out at 0.95 (the [0, 0.005] strip is dropped)
    assert auc([0.0] * 3) == pytest.approx(0.95) and auc([0.0] * 3, convention="exact") == pytest.approx(1.0)
    assert auc([0.2, 0.11]) == 0.0 and auc([0.2, 0.11], convention="exact") == 0.0
    with pytest.raises(ValueError, match="unknown AUC convention 'textbook'"):
        auc(nmes, convention="textbook")


def test_release_auc_matches_the_release_counting_rule():
    # analyze_wflw.py: count each NME <= 0.1 at the smallest grid value >= NME, normalise by ALL
    # images, cumulate, trapezoid x 10. Re-done here step by step on random NMEs.
    nmes = np.random.default_rng(2).gamma(4.0, 0.012, size=300)
    grid = np.linspace(0.005, 0.1, 20)
    counts = np.zeros(20)
    for value in nmes:
        if value <= 0.1:
            counts[np.nonzero(value <= grid)[0][0]] += 1
    ced = np.cumsum(counts / len(nmes))
    expected = sum((ced[i] + ced[i + 1]) / 2 * 0.005 for i in range(19)) * 10
    assert auc(nmes) == pytest.approx(expected, abs=1e-12)
    # and the exact convention is the integral of the step CED from 0 (fine Riemann sum)
    t = np.linspace(0, 0.1, 20001)
    riemann = np.mean((nmes[None, :] <= t[:, None]).mean(axis=1))
    assert auc(nmes, convention="exact") == pytest.approx(riemann, abs=1e-4)


def test_subsets_are_non_exclusive():
    nmes = np.array([0.02, 0.04, 0.2, 0.06])
    flags = {"pose": [1, 0, 1, 0], "blur": [1, 1, 1, 1], "makeup": [0, 0, 0, 0]}
    out = subset_metrics(nmes, flags)
    assert out["pose"]["nme"] == pytest.approx(0.11) and out["pose"]["count"] == 2
    assert out["pose"]["fr"] == 0.5
    assert out["blur"]["nme"] == pytest.approx(0.08) and out["blur"]["fr"] == 0.25
    assert out["makeup"]["count"] == 0 and np.isnan(out["makeup"]["nme"])
    with pytest.raises(ValueError, match="subset 'pose'"):
        subset_metrics(nmes, {"pose": [1, 0]})


def test_nme_split_by_visibility():
    gt = _wflw_face(2)
    pred = gt.copy()
    visibility = np.ones((2, 98), dtype=bool)
    visibility[0, :10] = False
    pred[0, :10] += [6.0, 8.0]  # occluded points 10 px off, d = 100
    pred[0, 10:] += [0.6, 0.8]  # visible points 1 px off
    visible, occluded = nme_by_visibility(pred, gt, visibility, WFLW)
    assert visible.tolist() == pytest.approx([0.01, 0.0])
    assert occluded[0] == pytest.approx(0.1) and np.isnan(occluded[1])  # image 1 has none
    with pytest.raises(ValueError, match="visibility must be"):
        nme_by_visibility(pred, gt, visibility[:, :50], WFLW)


def test_accumulator_summary_in_update_order():
    gt = _wflw_face(5)
    # px along x, d = 100 -> NME = offset / 100 (off the CED grid, where rounding decides the bin)
    offsets = np.array([0.4, 2.2, 4.9, 9.1, 12.0])
    pred = gt + np.stack([offsets, np.zeros(5)], axis=1)[:, None, :]
    acc = MetricAccumulator(WFLW)
    attrs = [{"pose": 1, "blur": 0}, {"pose": 0, "blur": 1}, {"pose": 1, "blur": 1}]
    acc.update(pred[:3], gt[:3], names=["a", "b", "c"], attributes=attrs)
    acc.update(pred[3:], gt[3:], names=["d", "e"],
               attributes=np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]))  # WFLW column order
    assert acc.nmes.tolist() == pytest.approx((offsets / 100).tolist())
    assert acc.names == ["a", "b", "c", "d", "e"] and len(acc) == 5
    summary = acc.summary()
    assert summary["nme"] == pytest.approx(0.0572) and summary["count"] == 5
    assert summary["fr"] == pytest.approx(0.2)  # 0.12 only
    # release CED on the 20-point grid: 0.2 (.005..), 0.4 (.025..), 0.6 (.05..), 0.8 (.095, .1)
    # trapezoids: 0.2 x 3 + 0.3 + 0.4 x 4 + 0.5 + 0.6 x 8 + 0.7 + 0.8 = 9.3 -> x .005 / 0.1
    assert summary["auc"] == pytest.approx(0.465)
    assert summary["auc_exact"] == pytest.approx(np.mean([0.96, 0.78, 0.51, 0.09, 0.0]))
    assert list(summary["subsets"]) == list(WFLW.subsets)
    assert summary["subsets"]["pose"]["count"] == 3  # a, c, d
    assert summary["subsets"]["pose"]["nme"] == pytest.approx((0.004 + 0.049 + 0.091) / 3)
    assert summary["subsets"]["blur"]["count"] == 3  # b, c, e
    assert summary["subsets"]["occlusion"]["count"] == 0
    assert "visible_nme" not in summary


def test_accumulator_visibility_and_errors():
    gt = _wflw_face(2)
    pred = gt.copy()
    pred[:, :49] += [3.0, 4.0]  # first half 5 px off
    visibility = np.ones((2, 98), dtype=bool)
    visibility[:, :49] = False
    acc = MetricAccumulator(WFLW, norm="inter_ocular")
    acc.update(pred, gt, visibility=visibility)
    acc.update(gt[:1], gt[:1])  # no visibility: all visible, error 0
    summary = acc.summary()
    assert summary["occluded_nme"] == pytest.approx(0.05) and summary["occluded_count"] == 2
    assert summary["visible_nme"] == pytest.approx(0.0) and summary["visible_count"] == 3
    assert summary["subsets"] == {}
    with pytest.raises(ValueError, match="names hold 1 entries for a batch of 2"):
        acc.update(pred, gt, names=["x"])
    with pytest.raises(ValueError, match=r"array \[B, S\] = \[2, 6\]"):
        acc.update(pred, gt, attributes=np.zeros((2, 3)))
    assert len(acc) == 3  # failed updates add nothing
    with pytest.raises(ValueError, match="no images"):
        MetricAccumulator(WFLW).summary()


def test_a_scheme_name_works_wherever_a_scheme_does():
    from lgrn.landmarks import get_scheme
    from lgrn.metrics import MetricAccumulator, nme, reference_distance

    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (3, 98, 2))
    pred = gt + rng.normal(0, 1, gt.shape)
    np.testing.assert_array_equal(nme(pred, gt, "wflw98"), nme(pred, gt, get_scheme("wflw98")))
    np.testing.assert_array_equal(reference_distance(gt, "wflw98", "inter_pupil"),
                                  reference_distance(gt, get_scheme("wflw98"), "inter_pupil"))
    assert MetricAccumulator("wflw98").scheme.num_landmarks == 98
    with pytest.raises(ValueError):
        nme(pred, gt, "no_such_scheme")


def test_visibility_summary_is_the_one_occluded_nme():
    """Pooled over all occluded landmarks (each point error / its image's reference distance), as the
    released reports: the accumulator and the reports share this definition."""
    gt = _wflw_face(3)
    pred = gt.copy()
    visibility = np.ones((3, 98), dtype=bool)
    visibility[0, :2] = False                 # 2 occluded points, 10 px off -> 0.1
    visibility[1, :40] = False                # 40 occluded points, 2 px off -> 0.02
    pred[0, :2] += [6.0, 8.0]
    pred[1, :40] += [1.2, 1.6]
    summary = visibility_summary(pred, gt, visibility, WFLW)
    assert summary["occluded_nme"] == pytest.approx((2 * 0.1 + 40 * 0.02) / 42)   # not (0.1 + 0.02) / 2
    assert (summary["occluded_points"], summary["visible_points"]) == (42, 3 * 98 - 42)
    assert (summary["occluded_count"], summary["visible_count"]) == (2, 3)
    assert summary["visible_nme"] == pytest.approx(0.0)
    acc = MetricAccumulator(WFLW)
    acc.update(pred[:2], gt[:2], visibility=visibility[:2])
    acc.update(pred[2:], gt[2:], visibility=visibility[2:])
    assert {k: acc.summary()[k] for k in summary} == pytest.approx(summary)
    assert np.isnan(visibility_summary(gt[:1], gt[:1], np.ones((1, 98), bool), WFLW)["occluded_nme"])
    with pytest.raises(ValueError, match="visibility must be"):
        visibility_summary(pred, gt, visibility[:, :50], WFLW)
