"""Landmark schemes as data: per dataset the landmark count, flip permutation, normalisation
indices, subset names and graphs (docs/losses_metrics.md: the schemes, their graphs and user scheme
files; docs/augmentation.md: the flip).

Built-in schemes: ``wflw98``, ``300w68``, ``cofw29``, packaged as the scheme files
``lgrn/landmarks/builtin/<name>.yaml`` and read by the same loader as a user-defined scheme file
(:func:`load_scheme_file`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..textio import read_text_file
from .graphs import read_edges


def _perm_from_pairs(num_landmarks: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    perm = list(range(num_landmarks))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


@dataclass(frozen=True)
class Scheme:
    """Facts about one landmark layout.

    ``flip_permutation[i]`` is the old index whose point lands in slot ``i`` after a horizontal flip.
    ``inter_ocular`` / ``inter_pupil`` are (left indices, right indices); each side is averaged, so a
    single index is a point and several are a centroid (300W inter-pupil rule).
    ``gcn_graphs`` maps a graph name to directed edge rows ``[E, 2]``; ``default_gcn_graph`` names the
    one used when the config gives no ``top_k``; ``topk_graphs`` maps k to a graph name.
    ``laplacian_graph`` names the graph of the relative-location loss.
    """

    name: str
    num_landmarks: int
    flip_permutation: tuple[int, ...]
    inter_ocular: tuple[tuple[int, ...], tuple[int, ...]]
    inter_pupil: tuple[tuple[int, ...], tuple[int, ...]]
    subsets: tuple[str, ...] = ()
    gcn_graphs: dict[str, np.ndarray] = field(default_factory=dict, compare=False)
    default_gcn_graph: str = ""
    topk_graphs: dict[int, str] = field(default_factory=dict, compare=False)
    laplacian_graph: str = ""

    def gcn_edges(self, top_k: int | None = None) -> np.ndarray:
        """Edge rows for the GCN. ``top_k`` selects a data-driven top-k graph when the scheme has one
        (the release ignores top_k for 68 and 29 points, and so do we)."""
        if top_k is not None and self.topk_graphs:
            if top_k not in self.topk_graphs:
                raise ValueError(f"scheme {self.name!r} has no top-{top_k} graph; available: "
                                 f"{sorted(self.topk_graphs)} (derive one with lgrn.landmarks.topk_graph)")
            return self.gcn_graphs[self.topk_graphs[top_k]]
        return self.gcn_graphs[self.default_gcn_graph]

    def laplacian_edges(self) -> np.ndarray:
        return self.gcn_graphs[self.laplacian_graph]

    def to_dict(self) -> dict[str, Any]:
        """Plain-type description (stored in checkpoints; ``scheme_from_dict`` rebuilds it)."""
        return {
            "name": self.name,
            "num_landmarks": self.num_landmarks,
            "flip_permutation": list(self.flip_permutation),
            "inter_ocular": [list(s) for s in self.inter_ocular],
            "inter_pupil": [list(s) for s in self.inter_pupil],
            "subsets": list(self.subsets),
            "gcn_graphs": {k: v.tolist() for k, v in self.gcn_graphs.items()},
            "default_gcn_graph": self.default_gcn_graph,
            "topk_graphs": {str(k): v for k, v in self.topk_graphs.items()},
            "laplacian_graph": self.laplacian_graph,
        }


def scheme_from_dict(data: dict[str, Any]) -> Scheme:
    return Scheme(
        name=data["name"],
        num_landmarks=int(data["num_landmarks"]),
        flip_permutation=tuple(int(i) for i in data["flip_permutation"]),
        inter_ocular=tuple(tuple(int(i) for i in s) for s in data["inter_ocular"]),
        inter_pupil=tuple(tuple(int(i) for i in s) for s in data["inter_pupil"]),
        subsets=tuple(data.get("subsets", ())),
        gcn_graphs={k: np.asarray(v, dtype=np.int64).reshape(-1, 2) for k, v in data["gcn_graphs"].items()},
        default_gcn_graph=data["default_gcn_graph"],
        topk_graphs={int(k): v for k, v in data.get("topk_graphs", {}).items()},
        laplacian_graph=data["laplacian_graph"],
    )


BUILTIN_SCHEMES = ("wflw98", "300w68", "cofw29")
BUILTIN_DIR = Path(__file__).with_name("builtin")   # <name>.yaml for each built-in scheme
SCHEME_FOR_NUM_LANDMARKS = {98: "wflw98", 68: "300w68", 29: "cofw29"}
_CACHE: dict[str, Scheme] = {}


def get_scheme(name_or_path: str | Path) -> Scheme:
    """A built-in scheme by name (``wflw98``, ``300w68``, ``cofw29``) or a user scheme file."""
    key = str(name_or_path)
    if key not in _CACHE:
        if key in BUILTIN_SCHEMES:
            _CACHE[key] = load_scheme_file(BUILTIN_DIR / f"{key}.yaml")
        elif Path(key).suffix.lower() in (".yaml", ".yml", ".json"):
            return load_scheme_file(key)
        else:
            raise ValueError(f"unknown landmark scheme {key!r}: expected one of {BUILTIN_SCHEMES} "
                             "or a path to a .yaml/.json scheme file")
    return _CACHE[key]


def scheme_for_num_landmarks(num_landmarks: int) -> Scheme:
    if num_landmarks not in SCHEME_FOR_NUM_LANDMARKS:
        raise ValueError(f"no built-in scheme has {num_landmarks} landmarks (built-in: 98, 68, 29); "
                         "set structure.scheme to a scheme file")
    return get_scheme(SCHEME_FOR_NUM_LANDMARKS[num_landmarks])


def _index_list(value: Any, path: Path, key: str, num_landmarks: int) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    try:
        out = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: '{key}' must be an index or a list of indices, got {value!r}") from None
    if not out or min(out) < 0 or max(out) >= num_landmarks:
        raise ValueError(f"{path}: '{key}' indices must lie in 0..{num_landmarks - 1}, got {value!r}")
    return out


def load_scheme_file(path: str | Path) -> Scheme:
    """Load a scheme file (YAML/JSON): a user-defined scheme or one of the built-in ones.

    Keys: ``name``, ``num_landmarks``, ``flip_pairs`` (list of [a, b]; omitted = no symmetry),
    ``inter_ocular`` ([left, right], each an index or list of indices), ``inter_pupil`` (optional,
    defaults to inter_ocular), ``subsets`` (optional names), ``graph`` (edge-list file relative to the
    scheme file, or a list of [i, j] rows), ``laplacian_graph`` (optional, same forms, defaults to graph).
    Named graphs (optional, as the built-in schemes use them): ``graphs`` maps names to edge lists (same
    forms as ``graph``); ``graph`` and ``laplacian_graph`` may then name one of them, and ``topk_graphs``
    maps k to the name of the graph used when ``structure.gcn_param.top_k`` is k. Without ``graphs`` the
    GCN graph is called ``graph`` and a separate Laplacian graph ``laplacian``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scheme file not found: {path}")
    text = read_text_file(path)
    try:
        # JSON for .json (its errors carry line numbers); YAML otherwise, always the safe loader.
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot parse the scheme file: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a scheme file must hold a mapping")
    allowed = {"name", "num_landmarks", "flip_pairs", "inter_ocular", "inter_pupil", "subsets", "graph",
               "laplacian_graph", "graphs", "topk_graphs"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    for key in ("name", "num_landmarks", "inter_ocular", "graph"):
        if key not in data:
            raise ValueError(f"{path}: missing required key '{key}'")
    if not isinstance(data["name"], str) or not data["name"]:
        raise ValueError(f"{path}: 'name' must be a non-empty string, got {data['name']!r}")
    num_landmarks = data["num_landmarks"]
    if isinstance(num_landmarks, bool) or not isinstance(num_landmarks, int) or num_landmarks < 2:
        raise ValueError(f"{path}: 'num_landmarks' must be an integer >= 2, got {num_landmarks!r}")
    pairs = []
    flip_pairs = data.get("flip_pairs") or []
    if not isinstance(flip_pairs, list):
        raise ValueError(f"{path}: 'flip_pairs' must be a list of [a, b] pairs")
    for pair in flip_pairs:
        indices = _index_list(pair, path, "flip_pairs", num_landmarks)
        if len(indices) != 2 or indices[0] == indices[1]:
            raise ValueError(f"{path}: 'flip_pairs' entries must be two different indices [a, b], got {pair!r}")
        pairs.append((indices[0], indices[1]))
    perm = _perm_from_pairs(num_landmarks, pairs)
    if any(perm[perm[i]] != i for i in range(num_landmarks)):
        raise ValueError(f"{path}: 'flip_pairs' list an index twice (the flip must be an involution)")

    def side_pair(key: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        value = data[key]
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError(f"{path}: '{key}' must be [left, right]")
        return (_index_list(value[0], path, key, num_landmarks), _index_list(value[1], path, key, num_landmarks))

    def graph(key: str, value: Any) -> np.ndarray:
        if isinstance(value, str):
            edge_file = path.parent / value
            if not edge_file.is_file():
                raise ValueError(f"{path}: '{key}' names the edge list {edge_file}, which does not exist")
            return read_edges(edge_file, num_landmarks)
        try:
            edges = np.asarray(value, dtype=np.int64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: '{key}' must be a file name or a list of [i, j] rows") from None
        if edges.size == 0 or edges.min() < 0 or edges.max() >= num_landmarks:
            raise ValueError(f"{path}: '{key}' indices must lie in 0..{num_landmarks - 1}")
        if (edges[:, 0] == edges[:, 1]).any():
            raise ValueError(f"{path}: '{key}' has a self-loop row {edges[edges[:, 0] == edges[:, 1]][0].tolist()}")
        return edges

    named = data.get("graphs") or {}
    if not isinstance(named, dict) or not all(isinstance(k, str) and k for k in named):
        raise ValueError(f"{path}: 'graphs' must map graph names to edge lists, got {named!r}")
    graphs = {name: graph(f"graphs.{name}", value) for name, value in named.items()}

    def graph_name(key: str, own_name: str) -> str:
        # A string naming an entry of 'graphs' refers to it; anything else is an edge list of its own.
        value = data[key]
        if isinstance(value, str) and value in named:
            return value
        if own_name in named:
            raise ValueError(f"{path}: '{key}' is an edge list of its own, but 'graphs' already has a graph "
                             f"called {own_name!r}: name that entry in '{key}' or rename it")
        graphs[own_name] = graph(key, value)
        return own_name

    default_graph = graph_name("graph", "graph")
    laplacian = graph_name("laplacian_graph", "laplacian") if "laplacian_graph" in data else default_graph
    topk = data.get("topk_graphs") or {}
    if not isinstance(topk, dict):
        raise ValueError(f"{path}: 'topk_graphs' must map k to a name in 'graphs', got {topk!r}")
    topk_graphs: dict[int, str] = {}
    for k, name in topk.items():
        if isinstance(k, bool) or not str(k).isdigit() or int(k) < 1 or name not in named:
            raise ValueError(f"{path}: 'topk_graphs' must map k >= 1 to a name in 'graphs' "
                             f"({sorted(named)}), got {k!r}: {name!r}")
        topk_graphs[int(k)] = name
    subsets = data.get("subsets") or []
    if not isinstance(subsets, list) or not all(isinstance(x, str) for x in subsets):
        raise ValueError(f"{path}: 'subsets' must be a list of names, got {subsets!r}")
    io = side_pair("inter_ocular")
    return Scheme(
        name=str(data["name"]), num_landmarks=num_landmarks, flip_permutation=perm,
        inter_ocular=io, inter_pupil=side_pair("inter_pupil") if "inter_pupil" in data else io,
        subsets=tuple(subsets),
        gcn_graphs=graphs, default_gcn_graph=default_graph, topk_graphs=topk_graphs,
        laplacian_graph=laplacian)
