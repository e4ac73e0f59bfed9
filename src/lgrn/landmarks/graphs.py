"""Landmark graphs: edge-list files, the GCN adjacency pattern, the relative-location Laplacian and
the paper's data-driven top-k rule.

Edge lists are rows ``i j w`` (0-based, directed, as in the authors' ``utils/face_graph`` files).
The GCN uses only the *pattern* of the undirected union plus self-loops (L-GRN.md §3.2); the
Laplacian uses the rows as directed edges with weight 1 (§4.2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

GRAPH_DIR = Path(__file__).with_name("graphs")


def read_edges(path: str | Path, num_landmarks: int | None = None) -> np.ndarray:
    """Read an edge-list file into an int64 array ``[E, 2]`` of directed ``(i, j)`` rows.

    Accepts files with or without a trailing newline; blank lines are ignored. Raises ``ValueError``
    naming the file and line for a malformed row, a self-loop, a duplicate or an index out of range.
    """
    path = Path(path)
    edges: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
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
    """Relative-location matrix ``L`` ``[K, K]`` exactly as released (L-GRN.md §4.2).

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


def topk_graph(landmarks: np.ndarray, k: int = 3) -> np.ndarray:
    """Derive a top-k graph from training shapes ``[N, K, 2]`` by the paper's rule.

    C = (|corr(x)| + |corr(y)|) / 2 over the N shapes; each row keeps its k+1 largest entries (itself
    included), giving k directed rows per landmark sorted by descending correlation. Returns ``[K*k, 2]``.
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.ndim != 3 or landmarks.shape[2] != 2:
        raise ValueError(f"topk_graph expects landmarks [N, K, 2], got shape {landmarks.shape}")
    n, num_landmarks, _ = landmarks.shape
    if n < 2:
        raise ValueError("topk_graph needs at least 2 shapes to compute correlations")
    if not 1 <= k < num_landmarks:
        raise ValueError(f"k must be in 1..{num_landmarks - 1}, got {k}")
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.corrcoef(landmarks[:, :, 0], rowvar=False)
        cy = np.corrcoef(landmarks[:, :, 1], rowvar=False)
    corr = (np.abs(np.nan_to_num(cx)) + np.abs(np.nan_to_num(cy))) / 2.0
    np.fill_diagonal(corr, np.inf)  # self is always among the k+1 kept entries
    edges = []
    for i in range(num_landmarks):
        order = np.argsort(-corr[i], kind="stable")
        neighbours = [j for j in order if j != i][:k]
        edges.extend((i, j) for j in neighbours)
    return np.asarray(edges, dtype=np.int64)


def write_edges(path: str | Path, edges: np.ndarray, weights: np.ndarray | None = None) -> None:
    """Write an edge list in the release's ``i j w`` format."""
    weights = np.ones(len(edges)) if weights is None else np.asarray(weights)
    lines = [f"{int(i)} {int(j)} {float(w):.15g}" for (i, j), w in zip(edges, weights)]
    Path(path).write_text("\n".join(lines) + "\n")
