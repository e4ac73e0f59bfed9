"""Evaluation reports in the experiment folder (docs/training.md, "What a run writes into DIR"):
``nme.txt`` (per image, as released), ``lmk.txt`` with the PREDICTED landmarks (the release wrote the
ground truth, bug 6), ``lmk_original.txt`` (predictions in original-image pixels when the prepare
transform is known), ``analysis.json`` / ``analysis.md`` (NME, FR@0.1, AUC@0.1 overall and per subset,
which checkpoint and which selection rule), ``ced.png`` and, with ``--visualize``, ``vis_result/<name>``
images.

Every number comes from ``lgrn.metrics`` (docs/losses_metrics.md, "Metrics"); this module only picks
the subsets and formats. Every file is written to a temp file and renamed, so a failure never destroys
earlier results.
"""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import metrics
from ..atomic import write_bytes_atomic
from ..drawing import GREEN, RED, draw_points
from ..geometry import apply_affines, invert_affines
from ..images import read_bgr8
from .evaluate import EvalResult
from ..atomic import write_text_atomic

logger = logging.getLogger("lgrn")

THRESHOLD = 0.1
AUC_NOTE = ("AUC@0.1 'release' convention: CED sampled at t = 0.005..0.1 (20 points), trapezoid x 10, "
            "maximum 0.95; 'auc_exact' integrates the empirical CED from 0.")


def visibility_split(result: EvalResult, scheme: Any) -> dict[str, Any] | None:
    """Inter-ocular NME on the visible and on the occluded landmarks, pooled over points
    (``metrics.visibility_summary``), with the number of landmarks of each kind; None when the test
    set has no visibility labels."""
    if result.visibility is None:
        return None
    summary = metrics.visibility_summary(result.predictions, result.ground_truth, result.visibility, scheme,
                                         "inter_ocular")
    return {key: summary[key] for key in ("visible_points", "occluded_points", "visible_nme", "occluded_nme")}


def subset_masks(attributes: list[dict[str, int]], scheme: Any) -> dict[str, np.ndarray]:
    """Non-exclusive subsets from attribute flags (as released), in the scheme's order; for 300W
    the ``full`` set (common + challenging) is added when both have faces (without the challenging
    faces, 'full' would only repeat 'common' under a name that promises more)."""
    keys = [k for k in getattr(scheme, "subsets", ()) if any(k in a for a in attributes)]
    keys += sorted({k for a in attributes for k in a} - set(keys))
    masks = {k: np.array([int(a.get(k, 0)) == 1 for a in attributes], dtype=bool) for k in keys}
    if "common" in masks and "challenging" in masks and masks["common"].any() and masks["challenging"].any():
        masks["full"] = masks["common"] | masks["challenging"]
    return masks


def analysis(result: EvalResult, scheme: Any, info: dict[str, Any] | None = None,
             norm: str = "inter_ocular") -> dict[str, Any]:
    """The numbers of ``analysis.json``: overall and per-subset NME / FR@0.1 / AUC@0.1 with the
    ``norm`` normalisation (``test_param.norm``), the mean IO and IP NME, the visible/occluded split
    and the run ``info`` (checkpoint, selection rule...)."""
    if norm not in metrics.NORMS:
        raise ValueError(f"test_param.norm must be one of {', '.join(metrics.NORMS)}, got {norm!r}")
    nmes = result.nme_io if norm == "inter_ocular" else result.nme_ip
    overall = metrics.summarize(nmes, THRESHOLD)
    overall["nme_io"] = metrics.summarize(result.nme_io, THRESHOLD)["nme"]
    overall["nme_ip"] = metrics.summarize(result.nme_ip, THRESHOLD)["nme"]
    report: dict[str, Any] = {**(info or {}), "scheme": scheme.name, "norm": norm,
                              "threshold": THRESHOLD, "auc_convention": AUC_NOTE, "overall": overall,
                              "subsets": metrics.subset_metrics(nmes, subset_masks(result.attributes, scheme),
                                                                THRESHOLD)}
    split = visibility_split(result, scheme)
    if split is not None:
        report["visibility"] = split
    return report


def _fmt(value: Any, scale: float = 1.0, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def analysis_markdown(report: dict[str, Any]) -> str:
    lines = ["# Evaluation report", ""]
    for key in ("checkpoint", "model", "selection", "dataset", "epoch"):
        if key in report:
            lines.append(f"- {key}: {report[key]}")
    norm = report.get("norm", "inter_ocular").replace("_", "-")
    lines += [f"- scheme: {report['scheme']}, NME normalised by the {norm} distance (test_param.norm)", "",
              "| set | images | NME (%) | FR@0.1 (%) | AUC@0.1 | AUC@0.1 exact |", "|---|---|---|---|---|---|"]
    rows = [("all", report["overall"])] + list(report["subsets"].items())
    for name, s in rows:
        lines.append(f"| {name} | {s['count']} | {_fmt(s.get('nme'), 100)} | {_fmt(s.get('fr'), 100, 2)} | "
                     f"{_fmt(s.get('auc'), 1, 4)} | {_fmt(s.get('auc_exact'), 1, 4)} |")
    lines.append("")
    lines.append(f"Mean NME: inter-ocular {_fmt(report['overall'].get('nme_io'), 100)} %, "
                 f"inter-pupil {_fmt(report['overall'].get('nme_ip'), 100)} %.")
    if "visibility" in report:
        v = report["visibility"]
        lines.append(f"NME on visible landmarks: {_fmt(v['visible_nme'], 100)} % ({v['visible_points']} points); "
                     f"on occluded landmarks: {_fmt(v['occluded_nme'], 100)} % ({v['occluded_points']} points).")
    lines += ["", report["auc_convention"], ""]
    return "\n".join(lines)


def plot_ced(curves: dict[str, np.ndarray], path: str | Path, threshold: float = THRESHOLD,
             norm: str = "inter_ocular") -> Path:
    """Cumulative error distribution of one or more per-image NME vectors, saved as a PNG (Agg
    canvas, no pyplot global state)."""
    # deferred: matplotlib is slow to import and only needed for this plot
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    grid = np.linspace(0.0, threshold, 201)
    for label, nmes in curves.items():
        nmes = np.asarray(nmes, dtype=np.float64)
        ced = (nmes[None, :] <= grid[:, None]).mean(axis=1) if len(nmes) else np.zeros_like(grid)
        axes.plot(grid, ced, label=f"{label} (NME {100 * np.mean(nmes):.2f}%)" if len(nmes) else label)
    axes.set_xlim(0, threshold)
    axes.set_ylim(0, 1)
    axes.set_xlabel(f"NME ({norm.replace('_', '-')})")
    axes.set_ylabel("fraction of images")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left")
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return write_bytes_atomic(path, buffer.getvalue())


def draw_landmarks(image: np.ndarray, predicted: np.ndarray, ground_truth: np.ndarray | None = None) -> np.ndarray:
    """A copy of a BGR image with ground truth (red) and predictions (green) drawn."""
    canvas = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    radius = max(1, round(min(canvas.shape[:2]) / 256))
    if ground_truth is not None:
        draw_points(canvas, ground_truth, radius, RED)
    return draw_points(canvas, predicted, radius + 1, GREEN, thickness=1)


def sample_image(sample: Any) -> np.ndarray:
    """The BGR pixels of a Sample (in memory or read from its file; errors name the path)."""
    if getattr(sample, "image", None) is not None:
        return sample.image
    image = read_bgr8(sample.image_path)
    if image is None:
        raise FileNotFoundError(f"cannot read image {sample.image_path} ({sample.source or sample.name})")
    return image


def save_visualisations(result: EvalResult, samples: list, out_dir: str | Path) -> int:
    """``out_dir/<name>`` per image (parent folders created for nested names; a name without an
    image extension gets ``.png``). Returns the number written."""
    out_dir = Path(out_dir)
    root = out_dir.resolve()
    for sample, predicted, truth in zip(samples, result.predictions, result.ground_truth, strict=True):
        target = (out_dir / str(sample.name)).resolve()
        if root not in target.parents:
            raise ValueError(f"sample name {sample.name!r} escapes {out_dir}")
        if target.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
            target = target.with_name(target.name + ".png")
        canvas = draw_landmarks(sample_image(sample), predicted, truth)
        ok, encoded = cv2.imencode(target.suffix, canvas)
        if not ok:
            raise RuntimeError(f"cannot encode visualisation {target}")
        write_bytes_atomic(target, encoded.tobytes())
    return len(samples)


def _landmark_lines(landmarks: np.ndarray, names: list[str]) -> str:
    return "".join(" ".join(f"{v:.6f}" for v in points.reshape(-1)) + f" {name}\n"
                   for points, name in zip(landmarks, names, strict=True))


def write_reports(result: EvalResult, out_dir: str | Path, scheme: Any, info: dict[str, Any] | None = None,
                  visualize: bool = False, samples: list | None = None, norm: str = "inter_ocular") -> dict[str, Any]:
    """Write every evaluation file into ``out_dir``; returns the analysis dict. ``nme.txt`` keeps the
    release's inter-ocular NME per image; ``analysis.*`` and ``ced.png`` use ``norm``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "nme.txt",
                      "".join(f"{float(v)!r} {n}\n" for v, n in zip(result.nme_io, result.names, strict=True)))
    write_text_atomic(out_dir / "lmk.txt", _landmark_lines(result.predictions, result.names))
    known = [i for i, m in enumerate(result.original_matrices) if m is not None]
    if known:
        to_original = invert_affines(np.stack([result.original_matrices[i] for i in known]))
        original = apply_affines(result.predictions[known], to_original)
        write_text_atomic(out_dir / "lmk_original.txt", _landmark_lines(original, [result.names[i] for i in known]))
    report = analysis(result, scheme, info, norm)
    write_text_atomic(out_dir / "analysis.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out_dir / "analysis.md", analysis_markdown(report))
    plot_ced({str((info or {}).get("model", "model")): result.nme_io if norm == "inter_ocular" else result.nme_ip},
             out_dir / "ced.png", norm=norm)
    if visualize:
        if samples is None:
            raise ValueError("--visualize needs a dataset with Sample records")
        save_visualisations(result, samples, out_dir / "vis_result")
    overall = report["overall"]
    logger.info("ION: %.6f IPN: %.6f FR@0.1: %.4f AUC@0.1: %.4f (%s, %d images) -> %s", overall["nme_io"],
                overall["nme_ip"], overall["fr"], overall["auc"], norm, overall["count"], out_dir)
    return report
