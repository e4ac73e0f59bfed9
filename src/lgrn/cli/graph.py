"""`lgrn graph`: derive a data-driven top-k landmark graph from training annotations by the paper's rule
(docs/losses_metrics.md: ``C = (|corr(x)| + |corr(y)|) / 2`` over the training shapes, k strongest neighbours per
landmark) and write it as ``i j w`` rows like the release's ``98pts_top3.txt``, ready for
``structure.gcn_param.graph_file``.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from lgrn.data.shapes import load_training_shapes
from lgrn.landmarks import adjacency_pattern, topk_graph_weighted, write_edges

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgrn graph", description="Derive a top-k landmark graph from training annotations.",
        epilog="example: lgrn graph --source data/WFLW/train/train_98pt.txt --num-landmarks 98 --k 3 "
               "--out 98pts_top3_mine.txt")
    parser.add_argument("--source", nargs="+", required=True,
                        help="release-format list file(s): 2K coordinates then the image name per line")
    parser.add_argument("--num-landmarks", type=int, required=True, help="landmarks per shape (K)")
    parser.add_argument("--root", default=".", help="image folder of the list (images are not read)")
    parser.add_argument("--k", type=int, default=3, help="neighbours per landmark (default 3, as released)")
    parser.add_argument("--out", required=True, help="edge-list file to write (rows 'i j w')")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``lgrn graph``; returns the exit code."""
    args = build_parser().parse_args(argv)
    shapes = load_training_shapes(args.source, args.num_landmarks, args.root)
    edges, weights = topk_graph_weighted(shapes, args.k)
    out = Path(args.out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    write_edges(out, edges, weights)
    mask = adjacency_pattern(edges, args.num_landmarks)
    undirected = int((mask.sum() - args.num_landmarks) // 2)
    components = connected_components(csr_matrix(mask), directed=False)[0]
    print(f"{len(shapes)} shapes -> {len(edges)} rows (top-{args.k}), {undirected} undirected edges, "
          f"GCN mask nnz {int(mask.sum())}, {components} connected component(s), "
          f"weights {weights.min():.3f}..{weights.max():.3f}; wrote {out}")
    return 0
