"""Landmark schemes and graphs (docs/losses_metrics.md): flip permutations, graph counts,
Laplacian rows, the top-k rule on a planted correlation structure, user scheme files and `lgrn graph`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from lgrn.cli import main as lgrn_main
from lgrn.landmarks import (BUILTIN_DIR, BUILTIN_SCHEMES, INDEX_MAPS, WFLW98_TO_300W68, WFLW98_TO_COFW29, Scheme,
                            adjacency_pattern, get_scheme, landmark_correlation, laplacian_matrix,
                            load_scheme_file, read_edges, scheme_for_num_landmarks, scheme_from_dict,
                            topk_graph, topk_graph_weighted, write_edges)
from lgrn.landmarks.graphs import GRAPH_DIR

FIXED_POINTS = {"wflw98": [16, 51, 52, 53, 54, 57, 79, 85, 90, 94],
                "300w68": [8, 27, 28, 29, 30, 33, 51, 57, 62, 66],
                "cofw29": [20, 21, 24, 25, 26, 27, 28]}


@pytest.mark.parametrize("name,swaps", [("wflw98", [(60, 72), (96, 97), (0, 32), (55, 59), (95, 93)]),
                                        ("300w68", [(36, 45), (0, 16), (48, 54), (67, 65)]),
                                        ("cofw29", [(8, 9), (16, 17), (4, 6), (22, 23)])])
def test_flip_permutations(name, swaps):
    scheme = get_scheme(name)
    perm = np.array(scheme.flip_permutation)
    assert sorted(perm.tolist()) == list(range(scheme.num_landmarks))
    assert np.array_equal(perm[perm], np.arange(scheme.num_landmarks))  # an involution
    for a, b in swaps:
        assert perm[a] == b and perm[b] == a
    assert np.nonzero(perm == np.arange(scheme.num_landmarks))[0].tolist() == FIXED_POINTS[name]


def test_normalisation_indices():
    wflw = get_scheme("wflw98")
    assert wflw.inter_ocular == ((60,), (72,)) and wflw.inter_pupil == ((96,), (97,))
    assert get_scheme("300w68").inter_pupil == (tuple(range(36, 42)), tuple(range(42, 48)))
    assert get_scheme("cofw29").inter_ocular == ((8,), (9,)) and get_scheme("cofw29").inter_pupil == ((16,), (17,))
    assert scheme_for_num_landmarks(68).name == "300w68"
    with pytest.raises(ValueError, match="no built-in scheme has 50 landmarks"):
        scheme_for_num_landmarks(50)
    with pytest.raises(ValueError, match="unknown landmark scheme 'helen194'"):
        get_scheme("helen194")


@pytest.mark.parametrize("name,top_k,rows,mask_nnz", [("wflw98", 3, 294, 470), ("wflw98", None, 145, 388),
                                                      ("300w68", 3, 99, 266), ("cofw29", None, 52, 133)])
def test_gcn_graph_counts(name, top_k, rows, mask_nnz):
    scheme = get_scheme(name)
    edges = scheme.gcn_edges(top_k)  # top_k is ignored for 68 and 29 points, as released
    assert edges.shape == (rows, 2)
    mask = adjacency_pattern(edges, scheme.num_landmarks)
    assert mask.sum() == mask_nnz and np.array_equal(mask, mask.T) and mask.diagonal().all()


@pytest.mark.parametrize("graph,k,nnz,no_out", [
    ("98pts_top3.txt", 98, 392, []), ("98pts.txt", 98, 243, [59, 64, 82]),
    ("68pts.txt", 68, 167, [33, 42, 54]), ("29pts.txt", 29, 81, [25, 28])])
def test_laplacian_counts_and_rows(graph, k, nnz, no_out):
    edges = read_edges(GRAPH_DIR / graph, k)
    lap = laplacian_matrix(edges, k)
    assert np.count_nonzero(lap) == nnz
    assert np.all(np.diag(lap) == -1.0)
    assert [i for i in range(k) if np.count_nonzero(lap[i]) == 1] == no_out
    assert np.allclose(lap.sum(axis=1)[[i for i in range(k) if i not in no_out]], 0.0, atol=1e-6)  # mean - self
    # (L P)_i = mean of the listed out-neighbours - p_i, checked on random points for one row
    points = np.random.default_rng(0).normal(size=(k, 2))
    i = int(edges[0, 0])
    neighbours = edges[edges[:, 0] == i, 1]
    assert np.allclose((lap @ points)[i], points[neighbours].mean(axis=0) - points[i], atol=1e-6)


def test_top3_file_structure_and_laplacian_choice():
    rows = np.loadtxt(GRAPH_DIR / "98pts_top3.txt")
    assert np.array_equal(rows[:, 0], np.repeat(np.arange(98), 3))  # 3 rows per node, in node order
    assert np.all(np.diff(rows[:, 2].reshape(98, 3), axis=1) <= 0)  # weights non-increasing per node
    assert get_scheme("wflw98").laplacian_edges().tolist() == rows[:, :2].astype(int).tolist()
    assert get_scheme("wflw98").gcn_edges(3)[[0, 1, 2]].tolist() == [[0, 1], [0, 2], [0, 3]]
    with pytest.raises(ValueError, match="no top-5 graph"):
        get_scheme("wflw98").gcn_edges(5)


def test_read_edges_errors_name_file_and_line(tmp_path):
    cases = {"0 1 1\n1 x 1\n": ":2: non-numeric", "0 1\n2 2\n": ":2: self-loop", "0 1\n0 1\n": ":2: duplicate",
             "0 1\n0 9\n": ":2: index out of range", "0 1 1 1\n": ":1: expected 'i j \\[w\\]'"}
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"g{i}.txt"
        path.write_text(text)
        with pytest.raises(ValueError, match=f"g{i}.txt{message}"):
            read_edges(path, 5)
    (tmp_path / "ok.txt").write_text("0 1 0.5\n\n1 2 1")  # blank line, no final newline: fine
    assert read_edges(tmp_path / "ok.txt", 3).tolist() == [[0, 1], [1, 2]]


def test_landmark_correlation_hand_computed():
    # landmark 1's x is -2 x landmark 0's x (|corr| = 1); y never varies (undefined -> 0): C = 0.5.
    shapes = np.zeros((3, 2, 2))
    shapes[:, 0, 0] = [1.0, 2.0, 4.0]
    shapes[:, 1, 0] = [-2.0, -4.0, -8.0]
    corr = landmark_correlation(shapes)
    assert np.allclose(corr, [[1.0, 0.5], [0.5, 1.0]])


def test_topk_graph_recovers_planted_structure():
    # two groups {0,1,2} and {3,4,5} driven by independent latents; within a group the noise grows with
    # the index, so the ranking (and the descending weights) is known in advance.
    rng = np.random.default_rng(0)
    n = 400
    a, b = rng.normal(size=(2, n))
    noise = [0.05, 0.2, 0.6]
    shapes = np.zeros((n, 6, 2))
    for group, latent in ((0, a), (1, b)):
        for j, sigma in enumerate(noise):
            shapes[:, 3 * group + j] = latent[:, None] * [1.0, -1.0] + rng.normal(scale=sigma, size=(n, 2))
    edges, weights = topk_graph_weighted(shapes, k=2)
    assert edges.tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1],
                              [3, 4], [3, 5], [4, 3], [4, 5], [5, 3], [5, 4]]
    assert np.all(np.diff(weights.reshape(6, 2), axis=1) <= 0) and weights.min() > 0.7
    assert np.array_equal(topk_graph(shapes, k=2), edges)
    corr = landmark_correlation(shapes)
    assert np.allclose(weights, corr[edges[:, 0], edges[:, 1]])
    assert corr[0, 3] < 0.3  # across groups: unrelated
    with pytest.raises(ValueError, match="k must be in 1..5"):
        topk_graph(shapes, k=6)
    with pytest.raises(ValueError, match=r"\[N, K, 2\]"):
        topk_graph(shapes[:, :, 0], k=2)


def test_write_edges_round_trip(tmp_path):
    edges = np.array([[0, 1], [1, 0], [2, 1]])
    write_edges(tmp_path / "g.txt", edges, np.array([0.995034105559873, 0.9, 1.0]))
    assert (tmp_path / "g.txt").read_text() == "0 1 0.995034105559873\n1 0 0.9\n2 1 1\n"
    assert read_edges(tmp_path / "g.txt", 3).tolist() == edges.tolist()
    with pytest.raises(ValueError, match="3 edges but 2 weights"):
        write_edges(tmp_path / "h.txt", edges, np.ones(2))


def test_lgrn_graph_command(tmp_path, capsys):
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(50, 1, 1))
    shapes = np.concatenate([latent + rng.normal(scale=0.1, size=(50, 2, 2)),
                             -latent + rng.normal(scale=0.1, size=(50, 2, 2))], axis=1) * 10 + 100
    lines = [" ".join(f"{v:.6f}" for v in s.reshape(-1)) + f" img_{i}.png" for i, s in enumerate(shapes)]
    (tmp_path / "train_4pt.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "graphs" / "4pts_top1.txt"
    code = lgrn_main(["graph", "--source", str(tmp_path / "train_4pt.txt"), "--num-landmarks", "4", "--k", "1",
                      "--out", str(out)])
    assert code == 0
    rows = np.loadtxt(out)
    expected_edges, expected_weights = topk_graph_weighted(shapes.round(6), 1)
    assert rows[:, :2].astype(int).tolist() == expected_edges.tolist()
    assert np.allclose(rows[:, 2], expected_weights)
    assert "50 shapes -> 4 rows (top-1)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="train_4pt.txt:1"):  # wrong K: the reader names file and line
        lgrn_main(["graph", "--source", str(tmp_path / "train_4pt.txt"), "--num-landmarks", "5",
                   "--out", str(out)])


def test_scheme_dict_round_trip():
    for name in ("wflw98", "300w68", "cofw29"):
        scheme = get_scheme(name)
        again = scheme_from_dict(json.loads(json.dumps(scheme.to_dict())))
        assert again == scheme
        assert np.array_equal(again.gcn_edges(3), scheme.gcn_edges(3))
        assert np.array_equal(again.laplacian_edges(), scheme.laplacian_edges())


USER_SCHEME = {"name": "hand5", "num_landmarks": 5, "flip_pairs": [[0, 1], [2, 3]],
               "inter_ocular": [0, 1], "inter_pupil": [[0, 2], [1, 3]], "subsets": ["hard"],
               "graph": [[0, 1], [1, 2], [2, 3], [3, 4]], "laplacian_graph": "lap.txt"}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_user_scheme_file_loads(tmp_path, suffix):
    import yaml

    (tmp_path / "lap.txt").write_text("0 1 1\n1 0 1\n4 2 1\n")
    path = tmp_path / f"hand5{suffix}"
    path.write_text(json.dumps(USER_SCHEME) if suffix == ".json" else yaml.safe_dump(USER_SCHEME))
    scheme = get_scheme(path)
    assert scheme.name == "hand5" and scheme.num_landmarks == 5
    assert scheme.flip_permutation == (1, 0, 3, 2, 4)
    assert scheme.inter_ocular == ((0,), (1,)) and scheme.inter_pupil == ((0, 2), (1, 3))
    assert scheme.subsets == ("hard",)
    assert scheme.gcn_edges().tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert scheme.gcn_edges(3).tolist() == scheme.gcn_edges().tolist()  # no top-k graphs: ignored
    assert scheme.laplacian_edges().tolist() == [[0, 1], [1, 0], [4, 2]]


@pytest.mark.parametrize("change,message", [
    ({"inter_ocular": None}, "missing required key 'inter_ocular'"),
    ({"flip_pair": [[0, 1]]}, r"unknown key\(s\) \['flip_pair'\]"),
    ({"num_landmarks": "5"}, "'num_landmarks' must be an integer"),
    ({"flip_pairs": [[0, 1], [1, 2]]}, "'flip_pairs' list an index twice"),
    ({"flip_pairs": [[0, 1, 2]]}, "'flip_pairs' entries must be two different indices"),
    ({"inter_ocular": [0, 7]}, r"'inter_ocular' indices must lie in 0..4"),
    ({"inter_ocular": [0]}, r"'inter_ocular' must be \[left, right\]"),
    ({"graph": [[0, 1], [2, 9]]}, r"'graph' indices must lie in 0..4"),
    ({"graph": [[0, 1], [2, 2]]}, r"'graph' has a self-loop row \[2, 2\]"),
    ({"laplacian_graph": "missing.txt"}, "'laplacian_graph' names the edge list .*missing.txt"),
    ({"subsets": "hard"}, "'subsets' must be a list of names"),
])
def test_user_scheme_errors_name_file_and_key(tmp_path, change, message):
    (tmp_path / "lap.txt").write_text("0 1 1\n")
    data = {**USER_SCHEME, **change}
    data = {k: v for k, v in data.items() if v is not None}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"bad.json: {message}"):
        load_scheme_file(path)


def test_user_scheme_parse_errors(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="broken.yaml: cannot parse"):
        load_scheme_file(tmp_path / "broken.yaml")
    (tmp_path / "broken.json").write_text('{"name": "x",}')
    with pytest.raises(ValueError, match="broken.json: cannot parse.*line 1"):
        load_scheme_file(tmp_path / "broken.json")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml: a scheme file must hold a mapping"):
        load_scheme_file(tmp_path / "list.yaml")
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        get_scheme(tmp_path / "nope.yaml")


def _pairs_perm(num_landmarks, pairs):
    perm = list(range(num_landmarks))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


# The built-in schemes as they were defined in Python before they became the scheme files
# lgrn/landmarks/builtin/*.yaml: the files must give exactly these Scheme objects.
REFERENCE_SCHEMES = {
    "wflw98": dict(
        num_landmarks=98,
        pairs=[(k, 32 - k) for k in range(16)] + [
            (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
            (55, 59), (56, 58), (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
            (76, 82), (77, 81), (78, 80), (88, 92), (89, 91), (95, 93), (87, 83), (86, 84), (96, 97)],
        inter_ocular=((60,), (72,)), inter_pupil=((96,), (97,)),
        subsets=("pose", "expression", "illumination", "makeup", "occlusion", "blur"),
        graphs={"98pts": "98pts.txt", "98pts_top3": "98pts_top3.txt"},
        default_gcn_graph="98pts", topk_graphs={3: "98pts_top3"}, laplacian_graph="98pts_top3"),
    "300w68": dict(
        num_landmarks=68,
        pairs=[(k, 16 - k) for k in range(8)] + [
            (17, 26), (18, 25), (19, 24), (20, 23), (21, 22), (36, 45), (37, 44), (38, 43), (39, 42), (41, 46),
            (40, 47), (31, 35), (32, 34), (48, 54), (49, 53), (50, 52), (60, 64), (61, 63), (67, 65), (59, 55),
            (58, 56)],
        inter_ocular=((36,), (45,)), inter_pupil=(tuple(range(36, 42)), tuple(range(42, 48))),
        subsets=("common", "challenging"), graphs={"68pts": "68pts.txt"},
        default_gcn_graph="68pts", topk_graphs={}, laplacian_graph="68pts"),
    "cofw29": dict(
        num_landmarks=29,
        pairs=[(0, 1), (4, 6), (2, 3), (5, 7), (8, 9), (13, 15), (12, 14), (10, 11), (16, 17), (18, 19), (22, 23)],
        inter_ocular=((8,), (9,)), inter_pupil=((16,), (17,)), subsets=(), graphs={"29pts": "29pts.txt"},
        default_gcn_graph="29pts", topk_graphs={}, laplacian_graph="29pts"),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_SCHEMES))
def test_builtin_scheme_files_give_the_reference_schemes(name):
    """The built-in schemes are data files read by the user-scheme loader, identical to the former
    Python definitions: equal Scheme objects, the same graph names, edges and top-k table."""
    ref = REFERENCE_SCHEMES[name]
    k = ref["num_landmarks"]
    expected = Scheme(name=name, num_landmarks=k, flip_permutation=_pairs_perm(k, ref["pairs"]),
                      inter_ocular=ref["inter_ocular"], inter_pupil=ref["inter_pupil"], subsets=ref["subsets"],
                      gcn_graphs={g: read_edges(GRAPH_DIR / f, k) for g, f in ref["graphs"].items()},
                      default_gcn_graph=ref["default_gcn_graph"], topk_graphs=ref["topk_graphs"],
                      laplacian_graph=ref["laplacian_graph"])
    for scheme in (get_scheme(name), load_scheme_file(BUILTIN_DIR / f"{name}.yaml")):
        assert scheme == expected
        assert scheme.to_dict() == expected.to_dict()      # graphs and top-k table too (not in ==)
        assert list(scheme.gcn_graphs) == list(expected.gcn_graphs)
        assert scheme.topk_graphs == expected.topk_graphs
    assert sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")) == sorted(BUILTIN_SCHEMES)


def test_user_scheme_named_graphs_and_topk(tmp_path):
    (tmp_path / "ring.txt").write_text("0 1 1\n1 2 1\n2 3 1\n3 4 1\n4 0 1\n")
    data = {**USER_SCHEME, "graphs": {"ring": "ring.txt", "pair": [[0, 1], [1, 0]]}, "graph": "ring",
            "laplacian_graph": "pair", "topk_graphs": {2: "pair"}}
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    scheme = load_scheme_file(path)
    assert list(scheme.gcn_graphs) == ["ring", "pair"]
    assert scheme.default_gcn_graph == "ring" and scheme.laplacian_graph == "pair" and scheme.topk_graphs == {2: "pair"}
    assert scheme.gcn_edges().tolist() == [[0, 1], [1, 2], [2, 3], [3, 4], [4, 0]]
    assert scheme.gcn_edges(2).tolist() == scheme.laplacian_edges().tolist() == [[0, 1], [1, 0]]
    again = scheme_from_dict(json.loads(json.dumps(scheme.to_dict())))
    assert again == scheme and again.topk_graphs == scheme.topk_graphs


@pytest.mark.parametrize("change,message", [
    ({"graphs": [[0, 1]]}, "'graphs' must map graph names to edge lists"),
    ({"graphs": {"g": "missing.txt"}}, "'graphs.g' names the edge list .*missing.txt"),
    ({"graphs": {"g": [[0, 9]]}}, r"'graphs.g' indices must lie in 0..4"),
    ({"graphs": {"g": [[0, 1]]}, "topk_graphs": {3: "nope"}}, r"'topk_graphs' must map k >= 1 to a name in 'graphs'"),
    ({"graphs": {"g": [[0, 1]]}, "topk_graphs": {0: "g"}}, r"'topk_graphs' must map k >= 1"),
    ({"graphs": {"graph": [[0, 1]]}}, "'graph' is an edge list of its own, but 'graphs' already has a graph"),
])
def test_user_scheme_named_graph_errors(tmp_path, change, message):
    (tmp_path / "lap.txt").write_text("0 1 1\n")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**USER_SCHEME, **change}))
    with pytest.raises(ValueError, match=f"bad.json: {message}"):
        load_scheme_file(path)


def test_index_maps_are_landmark_facts():
    """The 98 -> 68 / 29 maps live in lgrn.landmarks; the synthetic package re-exports the same objects."""
    from lgrn.data import synthetic

    assert set(INDEX_MAPS) == set(BUILTIN_SCHEMES)
    for name, index_map in INDEX_MAPS.items():
        assert len(index_map) == get_scheme(name).num_landmarks and len(set(index_map)) == len(index_map)
        assert 0 <= min(index_map) and max(index_map) < 98
    assert INDEX_MAPS["300w68"] is WFLW98_TO_300W68 and INDEX_MAPS["cofw29"] is WFLW98_TO_COFW29
    assert synthetic.INDEX_MAPS is INDEX_MAPS and synthetic.WFLW98_TO_300W68 is WFLW98_TO_300W68
