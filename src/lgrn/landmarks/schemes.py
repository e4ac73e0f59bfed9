"""Landmark schemes as data: per dataset the landmark count, flip permutation, normalisation
indices, subset names and graphs (L-GRN.md §3, §5.3, §7.1).

Built-in schemes: ``wflw98``, ``300w68``, ``cofw29``. A user-defined scheme is a YAML/JSON file
(see :func:`load_scheme_file`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..textio import read_text_file
from .graphs import GRAPH_DIR, read_edges


def _perm_from_pairs(num_landmarks: int, pairs: list[tuple[int, int]]) -> tuple[int, ...]:
    perm = list(range(num_landmarks))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


WFLW_FLIP_PAIRS = [(k, 32 - k) for k in range(16)] + [
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
    (55, 59), (56, 58), (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
    (76, 82), (77, 81), (78, 80), (88, 92), (89, 91), (95, 93), (87, 83), (86, 84), (96, 97)]
W300_FLIP_PAIRS = [(k, 16 - k) for k in range(8)] + [
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (36, 45), (37, 44), (38, 43), (39, 42), (41, 46),
    (40, 47), (31, 35), (32, 34), (48, 54), (49, 53), (50, 52), (60, 64), (61, 63), (67, 65), (59, 55), (58, 56)]
COFW_FLIP_PAIRS = [(0, 1), (4, 6), (2, 3), (5, 7), (8, 9), (13, 15), (12, 14), (10, 11), (16, 17), (18, 19),
                   (22, 23)]

WFLW_SUBSETS = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")


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


def _builtin(name: str) -> Scheme:
    if name == "wflw98":
        return Scheme(
            name="wflw98", num_landmarks=98,
            flip_permutation=_perm_from_pairs(98, WFLW_FLIP_PAIRS),
            inter_ocular=((60,), (72,)), inter_pupil=((96,), (97,)),
            subsets=WFLW_SUBSETS,
            gcn_graphs={"98pts": read_edges(GRAPH_DIR / "98pts.txt", 98),
                        "98pts_top3": read_edges(GRAPH_DIR / "98pts_top3.txt", 98)},
            default_gcn_graph="98pts", topk_graphs={3: "98pts_top3"},
            laplacian_graph="98pts_top3")  # the release hard-wires top-3 for the loss
    if name == "300w68":
        return Scheme(
            name="300w68", num_landmarks=68,
            flip_permutation=_perm_from_pairs(68, W300_FLIP_PAIRS),
            inter_ocular=((36,), (45,)), inter_pupil=(tuple(range(36, 42)), tuple(range(42, 48))),
            subsets=("common", "challenging"),
            gcn_graphs={"68pts": read_edges(GRAPH_DIR / "68pts.txt", 68)},
            default_gcn_graph="68pts", laplacian_graph="68pts")
    if name == "cofw29":
        return Scheme(
            name="cofw29", num_landmarks=29,
            flip_permutation=_perm_from_pairs(29, COFW_FLIP_PAIRS),
            inter_ocular=((8,), (9,)), inter_pupil=((16,), (17,)),
            gcn_graphs={"29pts": read_edges(GRAPH_DIR / "29pts.txt", 29)},
            default_gcn_graph="29pts", laplacian_graph="29pts")
    raise KeyError(name)


BUILTIN_SCHEMES = ("wflw98", "300w68", "cofw29")
SCHEME_FOR_NUM_LANDMARKS = {98: "wflw98", 68: "300w68", 29: "cofw29"}
_CACHE: dict[str, Scheme] = {}


def get_scheme(name_or_path: str | Path) -> Scheme:
    """A built-in scheme by name (``wflw98``, ``300w68``, ``cofw29``) or a user scheme file."""
    key = str(name_or_path)
    if key not in _CACHE:
        if key in BUILTIN_SCHEMES:
            _CACHE[key] = _builtin(key)
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
    """Load a user-defined scheme from YAML/JSON.

    Keys: ``name``, ``num_landmarks``, ``flip_pairs`` (list of [a, b]; omitted = no symmetry),
    ``inter_ocular`` ([left, right], each an index or list of indices), ``inter_pupil`` (optional,
    defaults to inter_ocular), ``subsets`` (optional names), ``graph`` (edge-list file relative to the
    scheme file, or a list of [i, j] rows), ``laplacian_graph`` (optional, same forms, defaults to graph).
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
               "laplacian_graph"}
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

    def graph(key: str) -> np.ndarray:
        value = data[key]
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

    graphs = {"graph": graph("graph")}
    if "laplacian_graph" in data:
        graphs["laplacian"] = graph("laplacian_graph")
    subsets = data.get("subsets") or []
    if not isinstance(subsets, list) or not all(isinstance(x, str) for x in subsets):
        raise ValueError(f"{path}: 'subsets' must be a list of names, got {subsets!r}")
    io = side_pair("inter_ocular")
    return Scheme(
        name=str(data["name"]), num_landmarks=num_landmarks, flip_permutation=perm,
        inter_ocular=io, inter_pupil=side_pair("inter_pupil") if "inter_pupil" in data else io,
        subsets=tuple(subsets),
        gcn_graphs=graphs, default_gcn_graph="graph",
        laplacian_graph="laplacian" if "laplacian" in graphs else "graph")
