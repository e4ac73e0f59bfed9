"""Graph layers of the L-GRN head: the semantic graph convolution (self transform + shared neighbour
transform, edge weights softmaxed per row over a fixed adjacency pattern), its BN/ReLU and residual
wrappers, the 10-layer SemGCN stack and the per-image relation learner (dynamic edge weights).

The adjacency pattern (bool ``[K, K]``, undirected + self-loops) is turned once into registered
buffers: the row-major flat positions of its non-zeros (where edge logits are written, exactly in
the order the release fills them), a float mask and the off-diagonal mask. The forward pass is dense
tensor algebra only (scatter, softmax, matmul): no sparse tensors, no per-call rebuild, no host
copies, so it runs on any device, exports to ONNX and compiles (docs/models.md, "Heads";
docs/deviations.md, release bug 14).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# Logit written outside the pattern before the row softmax. Finite (never -inf, which gives NaN
# for a fully masked row and trips some exporters) and as released; the softmax runs in float32,
# where exp(-9e15 - max) is exactly 0.
MASKED_LOGIT = -9e15


def pattern_positions(pattern: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Row-major flat indices ``[nnz]`` (int64) of the True entries of a ``[K, K]`` pattern."""
    pattern = torch.as_tensor(np.asarray(pattern, dtype=bool))
    if pattern.ndim != 2 or pattern.shape[0] != pattern.shape[1]:
        raise ValueError(f"adjacency pattern must be square [K, K], got shape {tuple(pattern.shape)}")
    if not bool(pattern.diagonal().all()):
        raise ValueError("adjacency pattern must contain every self-loop (use lgrn.landmarks.adjacency_pattern)")
    return torch.nonzero(pattern.reshape(-1), as_tuple=False).reshape(-1)


class EdgeSoftmax(nn.Module):
    """Turns edge logits ``[b, nnz]`` (b = 1 for static, B for per-image) into row-stochastic
    adjacency matrices ``[b, K, K]``: logits scattered row-major into the pattern, ``MASKED_LOGIT``
    elsewhere, softmax along each row (float32 even under autocast)."""

    def __init__(self, pattern: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        positions = pattern_positions(pattern)
        num_nodes = int(np.asarray(pattern).shape[0])
        self.num_nodes = num_nodes
        self.num_edges = int(positions.numel())
        self.register_buffer("positions", positions, persistent=False)
        mask = torch.zeros(num_nodes * num_nodes)
        mask[positions] = 1.0
        self.register_buffer("mask", mask.reshape(num_nodes, num_nodes), persistent=False)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        batch = logits.shape[0]
        dense = torch.full((batch, self.num_nodes * self.num_nodes), MASKED_LOGIT,
                           dtype=torch.float32, device=logits.device)
        dense = dense.scatter(1, self.positions.unsqueeze(0).expand(batch, -1), logits)
        weights = torch.softmax(dense.reshape(batch, self.num_nodes, self.num_nodes), dim=-1)
        return weights * self.mask  # exact zeros outside the pattern whatever the logits


class SemGraphConv(nn.Module):
    """y_i = a_ii W0^T x_i + sum_{j in N(i)} a_ij W1^T x_j + b over ``[B, K, F_in]``.

    ``weight`` ``[2, F_in, F_out]`` (0: self, 1: neighbours), ``edge_logits`` ``[1, nnz]`` (init 1,
    so every row starts uniform: a_ij = 1 / (deg_i + 1)), ``bias`` ``[F_out]``. With
    ``extra_logits`` ``[B, nnz]`` (dynamic mode) the per-image logits are added to this layer's own.
    """

    def __init__(self, in_features: int, out_features: int, pattern: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.edge_softmax = EdgeSoftmax(pattern)
        num_nodes = self.edge_softmax.num_nodes
        # Registration order W, e, bias matches the release (and so its optimiser's parameter order).
        self.weight = nn.Parameter(torch.empty(2, in_features, out_features))
        self.edge_logits = nn.Parameter(torch.empty(1, self.edge_softmax.num_edges))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.register_buffer("off_diagonal", 1.0 - torch.eye(num_nodes), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The release's init: xavier-uniform with gain 1.414 on the 3-D weight, whose fans PyTorch
        # computes as F_in * F_out and 2 * F_out (docs/models.md, "Heads").
        nn.init.xavier_uniform_(self.weight, gain=1.414)
        nn.init.ones_(self.edge_logits)
        bound = 1.0 / math.sqrt(self.out_features)
        nn.init.uniform_(self.bias, -bound, bound)

    def adjacency(self, extra_logits: torch.Tensor | None = None) -> torch.Tensor:
        """Row-stochastic edge weights ``[1 or B, K, K]``."""
        logits = self.edge_logits if extra_logits is None else self.edge_logits + extra_logits
        return self.edge_softmax(logits)

    def forward(self, x: torch.Tensor, extra_logits: torch.Tensor | None = None) -> torch.Tensor:
        # The softmax is float32; follow x's dtype for a model cast to half/bfloat16 as a whole.
        adjacency = self.adjacency(extra_logits).to(x.dtype)
        h_self = torch.matmul(x, self.weight[0])
        h_neighbours = torch.matmul(x, self.weight[1])
        self_weight = adjacency.diagonal(dim1=-2, dim2=-1).unsqueeze(-1)      # [b, K, 1]
        neighbour_weights = adjacency * self.off_diagonal.to(x.dtype)         # [b, K, K]
        return self_weight * h_self + torch.matmul(neighbour_weights, h_neighbours) + self.bias

    def macs(self, batch: int = 1) -> int:
        """Multiply-accumulates of one forward pass (two transforms + aggregation)."""
        k = self.edge_softmax.num_nodes
        return batch * (2 * k * self.in_features * self.out_features + k * k * self.out_features)


class GraphConvBlock(nn.Module):
    """SemGraphConv -> BatchNorm1d over ``[B, F, K]`` (statistics over batch and nodes) -> ReLU
    (-> dropout if ``p_dropout``): the release's ``_GraphConv``."""

    def __init__(self, in_features: int, out_features: int, pattern: np.ndarray | torch.Tensor,
                 p_dropout: float | None = None) -> None:
        super().__init__()
        self.gconv = SemGraphConv(in_features, out_features, pattern)
        self.bn = nn.BatchNorm1d(out_features)
        self.dropout = nn.Dropout(p_dropout) if p_dropout else None

    def forward(self, x: torch.Tensor, extra_logits: torch.Tensor | None = None) -> torch.Tensor:
        x = self.gconv(x, extra_logits)
        x = F.relu(self.bn(x.transpose(1, 2)).transpose(1, 2))
        return self.dropout(x) if self.dropout is not None else x


class ResGraphBlock(nn.Module):
    """x + block2(block1(x)), no activation after the sum (the release's ``_ResGraphConv``)."""

    def __init__(self, features: int, pattern: np.ndarray | torch.Tensor, p_dropout: float | None = None) -> None:
        super().__init__()
        self.gconv1 = GraphConvBlock(features, features, pattern, p_dropout)
        self.gconv2 = GraphConvBlock(features, features, pattern, p_dropout)

    def forward(self, x: torch.Tensor, extra_logits: torch.Tensor | None = None) -> torch.Tensor:
        return x + self.gconv2(self.gconv1(x, extra_logits), extra_logits)


class SemGCN(nn.Module):
    """Input GraphConvBlock(F_in -> hid) -> ``num_layers`` ResGraphBlocks -> SemGraphConv(hid -> 2):
    ``[B, K, F_in] -> [B, K, 2]``. The output layer runs in float32 even under autocast: pixel
    coordinates up to 256 have a resolution of 1-2 px in bfloat16."""

    def __init__(self, pattern: np.ndarray | torch.Tensor, in_features: int, hid_dim: int = 128,
                 num_layers: int = 4, out_features: int = 2, p_dropout: float | None = None) -> None:
        super().__init__()
        self.gconv_input = GraphConvBlock(in_features, hid_dim, pattern, p_dropout)
        self.gconv_layers = nn.ModuleList(ResGraphBlock(hid_dim, pattern, p_dropout) for _ in range(num_layers))
        self.gconv_output = SemGraphConv(hid_dim, out_features, pattern)

    def graph_layers(self) -> list[SemGraphConv]:
        """The SemGraphConv layers in forward order (10 with the release's settings)."""
        return [m for m in self.modules() if isinstance(m, SemGraphConv)]

    def forward(self, x: torch.Tensor, extra_logits: torch.Tensor | None = None) -> torch.Tensor:
        x = self.gconv_input(x, extra_logits)
        for block in self.gconv_layers:
            x = block(x, extra_logits)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.gconv_output(x.to(self.gconv_output.weight.dtype), extra_logits)


class RelationLearner(nn.Module):
    """Per-image edge logits (the paper's dynamic neighbourhood weights, docs/models.md):
    global average pool of the node-embedding map ``[B, 4K, h, w]`` -> Linear -> ReLU -> Linear ->
    ``[B, nnz]`` (row-major over the pattern, not transposed). The last layer starts at zero, so at
    initialisation the dynamic model computes exactly the static one (uniform rows)."""

    def __init__(self, in_channels: int, num_edges: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden)
        self.fc2 = nn.Linear(hidden, num_edges)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, node_map: torch.Tensor) -> torch.Tensor:
        pooled = node_map.mean(dim=(2, 3))
        return self.fc2(F.relu(self.fc1(pooled)))
