"""Landmark graphs: edge-list files, the GCN adjacency pattern, the relative-location Laplacian and
the paper's data-driven top-k rule.

Edge lists are rows ``i j w`` (0-based, directed, as in the authors' ``utils/face_graph`` files).
The GCN uses only the *pattern* of the undirected union plus self-loops (docs/models.md); the
Laplacian uses the rows as directed edges with weight 1 (docs/losses_metrics.md).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..textio import read_text_file

GRAPH_DIR = Path(__file__).with_name("graphs")


def read_edges(path: str | Path, num_landmarks: int | None = None) -> np.ndarray:
    """Read an edge-list file into an int64 array ``[E, 2]`` of directed ``(i, j)`` rows.

    Accepts files with or without a trailing newline; blank lines are ignored. Raises ``ValueError``
    naming the file and line for a malformed row, a self-loop, a duplicate or an index out of range.
    """
    path = Path(path)
    edges: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for line_no, line in enumerate(read_text_file(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (2, 3):
            raise ValueError(f"{path}:{line_no}: expected 'i j [w]', got {len(fields)} fields: {line!r}")
        try:
            i, j = int(fields[0]), int(fields[1])
            if len(fields) == 3:
                float(fields[2])
        except ValueError:
            raise ValueError(f"{path}:{line_no}: non-numeric field in {line!r}") from None
        if i == j:
            raise ValueError(f"{path}:{line_no}: self-loop {i}-{j}")
        if min(i, j) < 0 or (num_landmarks is not None and max(i, j) >= num_landmarks):
            raise ValueError(f"{path}:{line_no}: index out of range 0..{(num_landmarks or 0) - 1}: {line!r}")
        if (i, j) in seen:
            raise ValueError(f"{path}:{line_no}: duplicate edge {i} {j}")
        seen.add((i, j))
        edges.append((i, j))
    if not edges:
        raise ValueError(f"{path}: no edges")
    return np.asarray(edges, dtype=np.int64)


def adjacency_pattern(edges: np.ndarray, num_landmarks: int) -> np.ndarray:
    """Boolean ``[K, K]`` mask: undirected union of ``edges`` plus self-loops (the SemGCN pattern)."""
    mask = np.eye(num_landmarks, dtype=bool)
    edges = np.asarray(edges, dtype=np.int64)
    mask[edges[:, 0], edges[:, 1]] = True
    mask[edges[:, 1], edges[:, 0]] = True
    return mask


def laplacian_matrix(edges: np.ndarray, num_landmarks: int) -> np.ndarray:
    """Relative-location matrix ``L`` ``[K, K]`` exactly as released (docs/losses_metrics.md).

    Directed rows, weight 1 per listed edge: row i = mean of its listed out-neighbours minus self,
    so ``(L @ P)_i = mean_j p_j - p_i``. A node without out-edges keeps ``-1`` on the diagonal only.
    """
    adj = np.zeros((num_landmarks, num_landmarks), dtype=np.float64)
    edges = np.asarray(edges, dtype=np.int64)
    adj[edges[:, 0], edges[:, 1]] = 1.0
    np.fill_diagonal(adj, 0.0)
    row_sum = adj.sum(axis=1, keepdims=True)
    row_sum[row_sum == 0] = 1.0
    lap = adj / row_sum
    np.fill_diagonal(lap, -1.0)
    return lap.astype(np.float32)


def landmark_correlation(landmarks: np.ndarray) -> np.ndarray:
    """The paper's relatedness matrix ``[K, K]`` of training shapes ``[N, K, 2]``:
    ``C = (|corr(x)| + |corr(y)|) / 2`` (Pearson over the N shapes). A coordinate that never varies has
    no defined correlation and counts as 0."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[2] != 2:
        raise ValueError(f"expected landmarks [N, K, 2], got shape {landmarks.shape}")
    if landmarks.shape[0] < 2:
        raise ValueError("correlations need at least 2 shapes")
    if not np.isfinite(landmarks).all():
        raise ValueError("landmarks contain non-finite coordinates")
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.corrcoef(landmarks[:, :, 0], rowvar=False)
        cy = np.corrcoef(landmarks[:, :, 1], rowvar=False)
    corr = (np.abs(np.nan_to_num(cx)) + np.abs(np.nan_to_num(cy))) / 2.0
    np.fill_diagonal(corr, 1.0)
    return corr


def topk_graph_weighted(landmarks: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """:func:`topk_graph` plus the correlation of every row: ``(edges [K*k, 2], weights [K*k])``, the
    content of a ``98pts_top3.txt``-style file."""
    corr = landmark_correlation(landmarks)
    num_landmarks = corr.shape[0]
    if not 1 <= k < num_landmarks:
        raise ValueError(f"k must be in 1..{num_landmarks - 1}, got {k}")
    ranking = corr.copy()
    np.fill_diagonal(ranking, np.inf)  # self is always among the k+1 kept entries
    edges = []
    for i in range(num_landmarks):
        order = np.argsort(-ranking[i], kind="stable")  # ties: lower index first
        edges.extend((i, int(j)) for j in order[1:k + 1])
    edges_arr = np.asarray(edges, dtype=np.int64)
    return edges_arr, corr[edges_arr[:, 0], edges_arr[:, 1]]


def topk_graph(landmarks: np.ndarray, k: int = 3) -> np.ndarray:
    """Derive a top-k graph from training shapes ``[N, K, 2]`` by the paper's rule.

    C = (|corr(x)| + |corr(y)|) / 2 over the N shapes; each row keeps its k+1 largest entries (itself
    included), giving k directed rows per landmark sorted by descending correlation. Returns ``[K*k, 2]``;
    :func:`topk_graph_weighted` also returns the correlations.
    """
    return topk_graph_weighted(landmarks, k)[0]


def write_edges(path: str | Path, edges: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Write an edge list in the release's ``i j w`` format."""
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    weights = np.ones(len(edges)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(weights) != len(edges):
        raise ValueError(f"write_edges: {len(edges)} edges but {len(weights)} weights")
    lines = [f"{int(i)} {int(j)} {float(w):.15g}" for (i, j), w in zip(edges, weights)]
    write_text_atomic(path, "\n".join(lines) + "\n")
