"""Losses against hand-computed values (docs/losses_metrics.md, "Losses"): Soft Wing / Wing / Smooth Wing curves, the release's
reductions, the relative-location (Laplacian) loss on a hand-made graph and on the shipped graphs, the
criterion builder, per-landmark weights, bf16 autocast and a loss that must fall under SGD."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lgrn.config import load_config
from lgrn.landmarks import get_scheme, laplacian_matrix, read_edges
from lgrn.landmarks.graphs import GRAPH_DIR
from lgrn.losses import (LOSSES, RelativeLocationLoss, build_criterion, euclidean_loss, l1_loss, l2_loss,
                         mse_loss, nme_loss, normalized_soft_wing_loss, relative_location_loss, smooth_l1_loss,
                         smooth_wing, soft_wing, soft_wing_loss, wing)

D = torch.float64


def _pair(residuals: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """pred = 0, target = residuals, as [1, K, 2]."""
    target = torch.tensor(residuals, dtype=D).reshape(1, -1, 2)
    return torch.zeros_like(target), target


# ----------------------------------------------------------------------------- curves
def test_soft_wing_values_eps_half():
    # B = 2 - 20 ln 5 = -30.188758; |x| >= 2: 20 ln(1 + 2|x|) + B.
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 20.0, 100.0, -3.0], dtype=D)
    expected = [0.0, 1.0, 2.0,
                8.729444732,   # 20 ln 7 - 30.188758
                44.082683085,  # 20 ln 41 - 30.188758
                75.877339912,  # 20 ln 201 - 30.188758
                8.729444732]   # symmetric
    assert soft_wing(x, curvature=0.5).tolist() == pytest.approx(expected, abs=1e-8)


def test_soft_wing_continuous_at_t1_with_slope_jump():
    for eps in (0.5, 2.0):
        below = soft_wing(torch.tensor(2.0 - 1e-9, dtype=D), curvature=eps)
        above = soft_wing(torch.tensor(2.0 + 1e-9, dtype=D), curvature=eps)
        assert float(above - below) == pytest.approx(0.0, abs=1e-6)
    x = torch.tensor([1.0, 2.5, 20.0], dtype=D, requires_grad=True)
    soft_wing(x, curvature=0.5).sum().backward()
    # slope 1 below t1, t2 / (eps + |x|) above: 20 / 3 at 2.5, 20 / 20.5 at 20.
    assert x.grad.tolist() == pytest.approx([1.0, 20 / 3, 20 / 20.5])


def test_wing_values_defaults():
    # w = 5, eps = 0.5: 5 ln(1 + 2|x|) below 5, |x| - C above, C = 5 - 5 ln 11.
    x = torch.tensor([0.0, 0.25, 1.0, 5.0, 10.0], dtype=D)
    assert wing(x).tolist() == pytest.approx([0.0, 2.027325541, 5.493061443, 11.989476364, 16.989476364])


def test_smooth_wing_values_and_continuity():
    # t1 2, t2 20, eps 2: B = 2 - 20 ln 2 = -11.862944; C = 20 - 20 ln 11 - B = -16.094962.
    x = torch.tensor([1.0, 2.0, 3.0, 20.0, 30.0], dtype=D)
    assert smooth_wing(x).tolist() == pytest.approx([1.0, 2.0, 6.462871026, 36.094961845, 46.094961845])
    for t in (2.0, 20.0):
        lo, hi = smooth_wing(torch.tensor([t - 1e-9, t + 1e-9], dtype=D)).tolist()
        assert hi - lo == pytest.approx(0.0, abs=1e-6)


# ----------------------------------------------------------------------------- reductions
def test_soft_wing_loss_means_over_all_coordinates():
    # one residual of 3 px among 2 x 3 x 2 = 12 coordinates: mean = 8.729445 / 12 (not /1, not /2).
    pred = torch.zeros(2, 3, 2, dtype=D)
    target = pred.clone()
    target[1, 2, 0] = 3.0
    assert float(soft_wing_loss(pred, target, curvature=0.5)) == pytest.approx(8.729444732 / 12)


def test_release_l2_euclidean_nme_and_normalized_wing():
    # sample 0: landmark 0 off by (3, 4); sample 1: perfect. K = 2.
    target = torch.tensor([[[0.0, 0.0], [10.0, 0.0]], [[0.0, 0.0], [10.0, 0.0]]], dtype=D)
    pred = target.clone()
    pred[0, 0] = torch.tensor([3.0, 4.0], dtype=D)
    assert float(l2_loss(pred, target)) == pytest.approx((2.5 + 0.0) / 2)  # sqrt(25 / 4) per sample
    assert float(euclidean_loss(pred, target)) == pytest.approx(5.0 / 4)  # 4 points
    # NME loss: per-sample mean distance x 256 / d(GT eyes 0 and 1 = 10 px): (2.5 * 25.6 + 0) / 2.
    assert float(nme_loss(pred, target, left=(0,), right=(1,))) == pytest.approx(32.0)
    # NormalizedWiderWing (eps 0.5): (sw(3) + sw(4)) / 4 coordinates x 25.6, then batch mean.
    value = normalized_soft_wing_loss(pred, target, left=(0,), right=(1,), curvature=0.5)
    assert float(value) == pytest.approx((8.729444732 + 13.755733298) / 4 * 25.6 / 2)


def test_torch_builtin_equivalents():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 5, 2, generator=gen) * 3, torch.randn(3, 5, 2, generator=gen) * 3
    assert torch.allclose(l1_loss(pred, target), torch.nn.functional.l1_loss(pred, target))
    assert torch.allclose(mse_loss(pred, target), torch.nn.functional.mse_loss(pred, target))
    assert torch.allclose(smooth_l1_loss(pred, target), torch.nn.functional.smooth_l1_loss(pred, target))


def test_zero_residual_gives_finite_gradients():
    # sqrt at 0 has an infinite slope; a perfect prediction must not produce NaN gradients.
    for fn in (l2_loss, euclidean_loss):
        pred = torch.zeros(2, 4, 2, requires_grad=True)
        fn(pred, torch.zeros(2, 4, 2)).backward()
        assert torch.isfinite(pred.grad).all()


def test_weights_default_equals_ones_and_zero_weight_excludes():
    gen = torch.Generator().manual_seed(1)
    pred, target = torch.randn(2, 4, 2, generator=gen) * 5, torch.randn(2, 4, 2, generator=gen) * 5
    ones = torch.ones(2, 4)
    for fn in (soft_wing_loss, l2_loss, euclidean_loss):
        assert torch.allclose(fn(pred, target), fn(pred, target, ones))
    weights = ones.clone()
    weights[:, 3] = 0.0
    moved = pred.clone()
    moved[:, 3] += 100.0  # a zero-weight landmark cannot change the loss
    assert torch.allclose(soft_wing_loss(pred, target, weights), soft_wing_loss(moved, target, weights))
    assert torch.allclose(soft_wing_loss(pred, target, weights), soft_wing_loss(pred[:, :3], target[:, :3]))


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"\[B, K, 2\]"):
        soft_wing_loss(torch.zeros(2, 3, 2), torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="weights must be"):
        soft_wing_loss(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 4))


# ----------------------------------------------------------------------------- relative-location loss
def test_laplacian_loss_on_hand_made_graph():
    # directed rows 0->1, 0->2, 1->0, 2->3; node 3 has no out-edge (its row is -p_3).
    edges = np.array([[0, 1], [0, 2], [1, 0], [2, 3]])
    lap = laplacian_matrix(edges, 4)
    assert lap.tolist() == [[-1, 0.5, 0.5, 0], [1, -1, 0, 0], [0, 0, -1, 1], [0, 0, 0, -1]]
    # D = P_pred - P_gt = (2,0), (0,4), (1,1), (0,3) -> L D = (-1.5,2.5), (2,-4), (-1,2), (0,-3).
    target = torch.tensor([[[5.0, 5.0], [6.0, 1.0], [0.0, 2.0], [9.0, 9.0]]], dtype=D)
    pred = target + torch.tensor([[[2.0, 0.0], [0.0, 4.0], [1.0, 1.0], [0.0, 3.0]]], dtype=D)
    # soft wing (eps 0.5) of |L D|: 1.5, 5.646431 (2.5 px), 2, 13.755733 (4 px), 1, 2, 0, 8.729445 (3 px).
    expected = (1.5 + 5.646431136 + 2.0 + 13.755733298 + 1.0 + 2.0 + 0.0 + 8.729444732) / 8
    loss = RelativeLocationLoss(lap, curvature=0.5)
    assert float(loss(pred, target)) == pytest.approx(expected)
    # the release's form (L P_pred vs L P_gt, separately) gives the same value
    lap_t = torch.as_tensor(lap, dtype=D)
    assert float(soft_wing_loss(lap_t @ pred, lap_t @ target, curvature=0.5)) == pytest.approx(expected)
    # a rigid translation of the whole shape costs nothing for nodes with neighbours, only the -p_3 row
    shifted = target + 1.0
    assert float(relative_location_loss(shifted, target, laplacian=torch.as_tensor(lap))) == pytest.approx(2 / 8)


@pytest.mark.parametrize("name,graph,no_out", [("300w68", "68pts.txt", [33, 42, 54]),
                                               ("cofw29", "29pts.txt", [25, 28]),
                                               ("wflw98", "98pts_top3.txt", [])])
def test_criterion_laplacian_follows_the_scheme(name, graph, no_out):
    scheme = get_scheme(name)
    k = scheme.num_landmarks
    criterion = build_criterion({"num_kpts": k, "criterion": {"type": "WiderWing", "kwargs": {"curvature": 0.5}}},
                                scheme)
    lap = criterion.relative.laplacian.numpy()
    assert np.array_equal(lap, laplacian_matrix(read_edges(GRAPH_DIR / graph, k), k))
    lonely = [i for i in range(k) if np.count_nonzero(lap[i]) == 1]
    assert lonely == no_out
    for i in lonely:  # row = -p_i only
        assert lap[i, i] == -1.0
    if name == "wflw98":  # every row: mean of 3 neighbours minus self
        assert np.allclose(np.sort(lap, axis=1)[:, -3:], 1 / 3) and np.all(np.diag(lap) == -1)


# ----------------------------------------------------------------------------- criterion
def test_release_config_criterion_value(repo_root):
    config = load_config(repo_root / "experiments/WLFW/config_resnet.yaml")
    scheme = get_scheme("wflw98")
    criterion = build_criterion(config["train_param"], scheme)
    assert criterion.type == "WiderWing"
    gen = torch.Generator().manual_seed(2)
    target = torch.rand(2, 98, 2, generator=gen) * 256
    pred = target + torch.randn(2, 98, 2, generator=gen) * 6
    total, parts = criterion(pred, target)
    lap = torch.as_tensor(laplacian_matrix(scheme.laplacian_edges(), 98))
    task = soft_wing_loss(pred, target, curvature=0.5)
    relative = soft_wing_loss(lap @ pred, lap @ target, curvature=0.5)
    assert torch.allclose(parts["task"], task) and torch.allclose(parts["laplace"], relative, rtol=1e-5)
    assert torch.allclose(total, task + relative, rtol=1e-5)
    # the release's interleaved [B, 2K] layout gives the same value
    assert torch.allclose(criterion(pred.reshape(2, -1), target.reshape(2, -1))[0], total)


def test_criterion_weights_and_kwargs_reach_both_terms():
    scheme = get_scheme("cofw29")
    pred, target = torch.zeros(1, 29, 2), torch.zeros(1, 29, 2)
    pred[0, 0, 0] = 3.0
    train_param = {"criterion": {"type": "WiderWing", "kwargs": {"curvature": 2.0}}, "task_weight": 2,
                   "laplace_weight": 0.5}
    total, parts = build_criterion(train_param, scheme)(pred, target)
    # eps 2: sw(3) = 20 ln 2.5 + 2 - 20 ln 2 = 6.462871; task = 2 x sw(3) / 58.
    assert float(parts["task"]) == pytest.approx(2 * 6.462871026 / 58, rel=1e-6)
    lap = torch.as_tensor(laplacian_matrix(scheme.laplacian_edges(), 29))
    relative = soft_wing(lap @ (pred - target), curvature=2.0).mean()
    assert float(parts["laplace"]) == pytest.approx(0.5 * float(relative), rel=1e-6)
    assert float(total) == pytest.approx(float(parts["task"] + parts["laplace"]))


def test_criterion_errors_name_the_key():
    scheme = get_scheme("cofw29")
    with pytest.raises(ValueError, match="unknown 'train_param.criterion.type' 'Wingg'.*WiderWing.*SmoothWing"):
        build_criterion({"criterion": {"type": "Wingg"}}, scheme)
    with pytest.raises(ValueError, match="train_param.criterion.kwargs.eps"):
        build_criterion({"criterion": {"type": "WiderWing", "kwargs": {"eps": 0.5}}}, scheme)
    with pytest.raises(ValueError, match="kwargs.curvature' must be > 0"):
        build_criterion({"criterion": {"type": "WiderWing", "kwargs": {"curvature": 0}}}, scheme)
    with pytest.raises(ValueError, match="num_kpts' is 98"):
        build_criterion({"num_kpts": 98, "criterion": {"type": "L1"}}, scheme)
    with pytest.raises(ValueError, match=r"pred \[B, 29, 2\]"):
        build_criterion({}, scheme)(torch.zeros(1, 30, 2), torch.zeros(1, 30, 2))


@pytest.mark.parametrize("type_name", list(LOSSES))
def test_every_criterion_type_is_zero_at_target_and_positive_elsewhere(type_name):
    scheme = get_scheme("cofw29")
    criterion = build_criterion({"criterion": {"type": type_name}}, scheme)
    assert criterion.type == type_name
    target = torch.rand(2, 29, 2, generator=torch.Generator().manual_seed(3)) * 200
    zero, _ = criterion(target.clone(), target)
    assert float(zero) == pytest.approx(0.0, abs=1e-6)
    pred = (target + 2.5).requires_grad_(True)
    total, parts = criterion(pred, target)
    assert parts["task"].item() > 0 and parts["laplace"].item() > 0
    total.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_bf16_autocast_computes_in_float32():
    scheme = get_scheme("wflw98")
    criterion = build_criterion({"criterion": {"kwargs": {"curvature": 0.5}}}, scheme)
    gen = torch.Generator().manual_seed(4)
    target = torch.rand(2, 98, 2, generator=gen) * 256
    pred = (target + torch.randn(2, 98, 2, generator=gen) * 4).requires_grad_(True)
    reference, _ = criterion(pred, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, parts = criterion(pred, target)
    assert total.dtype == torch.float32 and parts["laplace"].dtype == torch.float32
    assert total.item() == pytest.approx(reference.item(), rel=1e-6)
    total.backward()
    assert torch.isfinite(pred.grad).all()


@pytest.fixture
def one_thread():
    """Tiny matmuls on a shared 2-core machine: one intra-op thread avoids spinning contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_criterion_buffer_moves_with_module_and_loss_falls(one_thread):
    scheme = get_scheme("300w68")
    criterion = build_criterion({"criterion": {"kwargs": {"curvature": 0.5}}}, scheme)
    assert [name for name, _ in criterion.named_buffers()] == ["relative.laplacian"]
    assert criterion.to(torch.float64).relative.laplacian.dtype == torch.float64
    gen = torch.Generator().manual_seed(5)
    target = torch.rand(4, 68, 2, generator=gen) * 256
    pred = (target + torch.randn(4, 68, 2, generator=gen) * 30).requires_grad_(True)
    losses = []
    for step in range(80):
        total, _ = criterion(pred, target)
        pred.grad = None
        total.backward()
        with torch.no_grad():  # sign descent with a decaying step: ~1 px moves whatever the gradient scale
            pred -= 4.0 * 0.94 ** step * pred.grad.sign()
        losses.append(total.item())
    assert losses[-1] < 0.1 * losses[0]
