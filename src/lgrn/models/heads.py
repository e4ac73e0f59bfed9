"""Regression heads on the stride-32 backbone map ``[B, C, h, w]`` -> landmarks ``[B, K, 2]`` in
input pixels: the L-GRN graph head (map-to-node convs + SemGCN, the release's
``BaseGCNPredictor``, with static or per-image dynamic edge weights) and the FC baseline (the
release's ``FCPredictor``). ``h, w`` come from the crop size (crop_size // 32), never hard-coded;
the heads receive the adjacency pattern as an array and never read files (docs/models.md, "Heads").
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .graph import RelationLearner, SemGCN

EDGE_WEIGHT_MODES = ("static", "dynamic")


def _check_map(features: torch.Tensor, channels: int, size: tuple[int, int], head: str) -> None:
    # Python-level shape check: a clear message instead of a reshape/matmul error deep inside, and
    # static under tracing / torch.compile (shapes are known there).
    if features.ndim != 4 or features.shape[1] != channels or tuple(features.shape[2:]) != size:
        raise ValueError(f"{head}: expected a backbone map [B, {channels}, {size[0]}, {size[1]}] (input "
                         f"{size[0] * 32}x{size[1] * 32}, the configured crop_size), got {tuple(features.shape)}")


class MapToNode(nn.Module):
    """3x3 conv (bias) C -> 256, BN, ReLU, 3x3 conv (bias) 256 -> 4K, BN, ReLU; node i takes
    channels 4i..4i+3 flattened in (channel, row, col) order: ``[B, C, h, w] -> [B, K, 4*h*w]``.
    Also returns the ``[B, 4K, h, w]`` map (input of the relation learner)."""

    def __init__(self, in_channels: int, num_landmarks: int, expansion: int = 4, mid_channels: int = 256) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.conv_out = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, padding=1),
                                      nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True))
        self.conv_to_node = nn.Sequential(nn.Conv2d(mid_channels, expansion * num_landmarks, 3, padding=1),
                                          nn.BatchNorm2d(expansion * num_landmarks), nn.ReLU(inplace=True))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        node_map = self.conv_to_node(self.conv_out(features))
        # reshape (not view): correct for channels_last maps too, where it copies.
        nodes = node_map.reshape(node_map.shape[0], self.num_landmarks, -1)
        return nodes, node_map


class GraphHead(nn.Module):
    """The L-GRN head: ``forward(features [B, C, h, w]) -> landmarks [B, K, 2]``.

    ``edge_weights="static"``: each of the 10 graph layers has its own learned, input-independent
    edge logits (the release). ``"dynamic"``: a relation learner predicts one ``[B, nnz]`` logit
    vector per image from the node embedding, shared by all layers and ADDED to each layer's static
    logits; at initialisation it outputs zeros, so both modes start from the same uniform rows.
    """

    def __init__(self, in_channels: int, feature_size: tuple[int, int], pattern: np.ndarray,
                 hid_dim: int = 128, num_layers: int = 4, p_dropout: float | None = None,
                 edge_weights: str = "static", expansion: int = 4) -> None:
        super().__init__()
        pattern = np.asarray(pattern, dtype=bool)
        if edge_weights not in EDGE_WEIGHT_MODES:
            raise ValueError(f"gcn_param.edge_weights must be one of {EDGE_WEIGHT_MODES}, got {edge_weights!r}")
        self.num_landmarks = int(pattern.shape[0])
        self.in_channels = in_channels
        self.feature_size = (int(feature_size[0]), int(feature_size[1]))
        self.edge_weights = edge_weights
        self.map_to_node = MapToNode(in_channels, self.num_landmarks, expansion)
        node_features = expansion * self.feature_size[0] * self.feature_size[1]
        self.sem_gcn = SemGCN(pattern, node_features, hid_dim, num_layers, 2, p_dropout)
        self.num_edges = int(pattern.sum())
        self.relation = (RelationLearner(expansion * self.num_landmarks, self.num_edges, 2 * self.num_landmarks)
                         if edge_weights == "dynamic" else None)

    def edge_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        """Per-image logits ``[B, nnz]`` in dynamic mode, ``None`` in static mode."""
        if self.relation is None:
            return None
        return self.relation(self.map_to_node(features)[1])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_map(features, self.in_channels, self.feature_size, "GraphHead")
        nodes, node_map = self.map_to_node(features)
        extra_logits = self.relation(node_map) if self.relation is not None else None
        return self.sem_gcn(nodes, extra_logits)


class FCHead(nn.Module):
    """The FC baseline: flatten (channel, row, col) -> Linear(C*h*w -> 256) -> ReLU -> Linear(256 -> 2K),
    PyTorch default init; the interleaved 2K output is viewed as ``[B, K, 2]``. The last layer runs
    in float32 even under autocast (pixel coordinates need the precision)."""

    def __init__(self, in_channels: int, feature_size: tuple[int, int], num_landmarks: int, hidden: int = 256) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        self.in_channels = in_channels
        self.feature_size = (int(feature_size[0]), int(feature_size[1]))
        self.fc1 = nn.Linear(in_channels * self.feature_size[0] * self.feature_size[1], hidden)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, 2 * num_landmarks)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _check_map(features, self.in_channels, self.feature_size, "FCHead")
        hidden = self.relu(self.fc1(features.flatten(1)))
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            out = self.fc2(hidden.to(self.fc2.weight.dtype))
        return out.reshape(out.shape[0], self.num_landmarks, 2)
