"""ONNX export and static int8 quantisation (the runtime side, ONNX Runtime sessions, is ``lgrn.backends``).

``export_onnx`` writes a single-file ONNX model (input ``images [B, C, S, S]`` float32 with a dynamic
batch axis, output ``landmarks [B, K, 2]`` in input pixels) and embeds what is needed to rebuild pre- and
post-processing: the resolved config, the landmark scheme, crop size, colour mode and the input
convention (BGR crop, per-image per-channel z-score), also written to a JSON sidecar for people
(``lgrn.backends.read_metadata`` reads it back). ``quantize_int8`` runs ONNX Runtime's static QDQ quantiser
(int8 per-channel weights, uint8 activations, only convolutions quantised so the small graph head stays
float) calibrated on real face crops (``calibration_inputs``); ``max_landmark_difference`` is the parity
check between two networks, and ``export_checkpoint`` does all of it for ``lgrn export``
(docs/inference.md).
"""
from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._version import __version__
from .atomic import write_bytes_atomic, write_text_atomic
from .backends import (INPUT_NAME, OUTPUT_NAME, Network, OnnxLandmarkModel, load_onnx_model, read_metadata,
                       sidecar_path, torch_network, torch_to_onnx)
from .detect import FaceDetector, default_detector
from .images import IMAGE_SUFFIXES, ImageReadError, crop_faces, read_image
from .metrics import nme
from .models import load_model
from .pretrained import pretrained_path

# load_onnx_model, OnnxLandmarkModel, read_metadata (lgrn.backends) and IMAGE_SUFFIXES (lgrn.images) are
# re-exported: they were first published here.
__all__ = ["export_onnx", "quantize_int8", "calibration_inputs", "max_landmark_difference", "export_checkpoint",
           "ExportResult", "INPUT_NAME", "OUTPUT_NAME", "IMAGE_SUFFIXES", "load_onnx_model", "OnnxLandmarkModel",
           "read_metadata"]

INPUT_CONVENTION = ("BGR face crop (square, 1.2 x landmark box), resized to crop_size, grayscale when is_color is "
                    "false; per-image per-channel z-score (population std, std < 1e-6 -> 1, no /255); NCHW float32. "
                    "Output: landmarks [B, K, 2] (x, y) in crop pixels.")


def _metadata(model: Any, precision: str) -> dict[str, str]:
    structure = model.config["structure"]
    return {"lgrn.version": __version__, "lgrn.config": json.dumps(model.config),
            "lgrn.scheme": json.dumps(model.scheme.to_dict()), "lgrn.crop_size": str(structure["crop_size"]),
            "lgrn.is_color": str(bool(structure["is_color"])).lower(), "lgrn.precision": precision,
            "lgrn.input": INPUT_CONVENTION}


def _write_with_metadata(onnx_model: Any, path: Path, metadata: dict[str, str], sidecar: bool) -> None:
    del onnx_model.metadata_props[:]
    for key, value in metadata.items():
        onnx_model.metadata_props.add(key=key, value=value)
    write_bytes_atomic(path, onnx_model.SerializeToString())   # models under 2 GB: one protobuf
    if sidecar:
        readable = {k: (json.loads(v) if k in ("lgrn.config", "lgrn.scheme") else v) for k, v in metadata.items()}
        write_text_atomic(sidecar_path(path), json.dumps(readable, indent=1) + "\n")


def export_onnx(model: torch.nn.Module, path: str | Path, opset: int = 18, sidecar: bool = True) -> Path:
    """Export an lgrn ``LandmarkModel`` (eval mode, CPU copy) to ``path``: one self-contained ONNX file
    with a dynamic batch axis and the lgrn metadata (plus ``<path stem>.json`` when ``sidecar``).
    The graph comes from :func:`lgrn.backends.torch_to_onnx` (the torch.export-based exporter; its
    optimiser folds constants, including the static edge softmax of the graph head, and ONNX Runtime
    fuses BatchNorm into the convolutions at load time)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx_model = torch_to_onnx(model, opset=opset)
    _write_with_metadata(onnx_model, path, _metadata(model, "fp32"), sidecar)
    return path


def calibration_inputs(folder: str | Path, crop_size: int, is_color: bool = True, max_faces: int = 64,
                       detector: FaceDetector | None = None) -> np.ndarray:
    """Network inputs ``[N, C, S, S]`` float32 for quantisation calibration from the images under
    ``folder`` (recursive, sorted): faces found by the detector (default: ``default_detector()``) are cut as
    at inference;
    an image without a detected face is used whole (centre square), which suits folders of prepared
    face crops. Unreadable files are skipped; an empty result is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    detector = detector or default_detector()
    inputs: list[np.ndarray] = []
    for path in files:
        if sum(len(x) for x in inputs) >= max_faces:
            break
        try:
            image = read_image(path)
        except ImageReadError:
            continue
        crop_boxes = detector.calibration.crop_boxes(detector.detect(image))
        if not len(crop_boxes):
            h, w = image.shape[:2]
            side = min(h, w)
            crop_boxes = np.array([[(w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2]])
        inputs.append(crop_faces(image, crop_boxes, crop_size, is_color)[0])
    if not inputs:
        raise ValueError(f"no readable images under {folder} for calibration (looked for {', '.join(IMAGE_SUFFIXES)})")
    return np.concatenate(inputs)[:max_faces]


class _CalibrationReader:
    """Feeds calibration inputs one image at a time to ONNX Runtime's quantiser."""

    def __init__(self, inputs: np.ndarray) -> None:
        self.inputs = inputs
        self.index = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.index >= len(self.inputs):
            return None
        self.index += 1
        return {INPUT_NAME: self.inputs[self.index - 1:self.index]}

    def rewind(self) -> None:
        self.index = 0


def quantize_int8(fp32_path: str | Path, out_path: str | Path, inputs: np.ndarray,
                  op_types: Sequence[str] = ("Conv",), per_channel: bool = True, sidecar: bool = True) -> Path:
    """Static int8 quantisation (QDQ format) of an exported fp32 model, calibrated (min/max) on network
    inputs ``[N, C, S, S]``. Weights int8 per output channel, activations uint8 (U8S8: ONNX Runtime's
    fast VNNI kernels on x86; S8S8 measured 2.5x slower here); only ``op_types`` are quantised (default:
    convolutions, >99% of the compute; the graph head stays float). The model is first pre-processed
    (shape inference, BatchNorm folded into the convolutions) as ORT recommends."""
    import onnx   # optional dependencies (the onnx extra)
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    metadata = {f"lgrn.{k}": (json.dumps(v) if isinstance(v, dict) else str(v).lower() if isinstance(v, bool)
                              else str(v)) for k, v in read_metadata(fp32_path).items()}
    metadata["lgrn.precision"] = "int8"
    reader = _CalibrationReader(np.ascontiguousarray(inputs, dtype=np.float32))
    CalibrationDataReader.register(_CalibrationReader)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre, raw = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(raw), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=per_channel,
                        op_types_to_quantize=list(op_types))
        onnx_model = onnx.load(str(raw))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _write_with_metadata(onnx_model, out_path, metadata, sidecar)
    return out_path


def max_landmark_difference(a: Callable[[np.ndarray], np.ndarray], b: Callable[[np.ndarray], np.ndarray],
                            inputs: np.ndarray, batch_size: int = 16) -> float:
    """Largest absolute coordinate difference (input pixels) between two networks on ``inputs``; a
    ValueError when either gives a non-finite landmark (NaN - NaN would otherwise compare as 'no
    difference')."""
    worst = 0.0
    for i in range(0, len(inputs), batch_size):
        batch = inputs[i:i + batch_size]
        first, second = np.asarray(a(batch)), np.asarray(b(batch))
        for name, out in (("PyTorch", first), ("ONNX Runtime", second)):
            if not np.all(np.isfinite(out)):
                raise ValueError(f"the model outputs non-finite landmarks ({name}, inputs {i}..{i + len(batch) - 1}): "
                                 "its weights are broken (NaN or infinity); nothing to export")
        worst = max(worst, float(np.abs(first - second).max()))
    return worst


@dataclass
class ExportResult:
    """What :func:`export_checkpoint` made: the ``checkpoint`` it read and its ``model``, the fp32 ONNX file
    (``onnx_path``) and the int8 one (``int8_path``, None without int8), the parity figure
    ``difference`` (max |ONNX fp32 - PyTorch|, input pixels) and whether it is within the tolerance
    (``ok``), and the ``networks`` to compare further: "pytorch", "onnx_fp32" (and "onnx_int8")."""

    checkpoint: Path
    model: torch.nn.Module
    onnx_path: Path
    int8_path: Path | None
    difference: float
    ok: bool
    networks: dict[str, Network] = field(default_factory=dict)


def export_checkpoint(checkpoint: str | Path | None, onnx_path: str | Path, opset: int = 18, int8: bool = False,
                      int8_path: str | Path | None = None, calib: str | Path | None = None, calib_max: int = 64,
                      tolerance: float = 1e-3, threads: int | None = None) -> ExportResult:
    """``lgrn export`` without the command line: checkpoint (None: the shipped default model) -> fp32 ONNX
    at ``onnx_path`` (+ sidecar), parity check against PyTorch on 8 random inputs plus the calibration
    faces, and with ``int8`` a static int8 model (``int8_path``, default ``<onnx stem>.int8.onnx``)
    calibrated on up to ``calib_max`` faces from the images under ``calib`` (required for int8). Prints
    one line per step."""
    if int8 and not calib:
        raise ValueError("int8 export needs calibration images (calib)")
    checkpoint = Path(checkpoint) if checkpoint is not None else pretrained_path()
    model = load_model(checkpoint)
    onnx_path = export_onnx(model, onnx_path, opset=opset)
    fp32 = load_onnx_model(onnx_path, threads=threads)
    print(f"wrote {onnx_path} (+ {sidecar_path(onnx_path).name}): {fp32.num_landmarks} landmarks, scheme "
          f"{fp32.scheme.name}, input [B, {3 if fp32.is_color else 1}, {fp32.crop_size}, {fp32.crop_size}]")
    structure = model.config["structure"]
    generator = np.random.default_rng(0)
    inputs = generator.standard_normal((8, 3 if structure["is_color"] else 1, structure["crop_size"],
                                        structure["crop_size"])).astype(np.float32)
    calib_inputs = None
    if calib:
        calib_inputs = calibration_inputs(calib, structure["crop_size"], structure["is_color"], calib_max)
        inputs = np.concatenate([inputs, calib_inputs])
    torch_run = torch_network(model, torch.device("cpu"))
    difference = max_landmark_difference(torch_run, fp32.run_numpy, inputs)
    ok = difference <= tolerance
    print(f"parity: max |ONNX fp32 - PyTorch| = {difference:.2e} px over {len(inputs)} inputs "
          f"(tolerance {tolerance:g}): {'OK' if ok else 'FAILED'}")
    networks: dict[str, Network] = {"pytorch": torch_run, "onnx_fp32": fp32.run_numpy}
    int8_out = None
    if int8:
        int8_out = Path(int8_path) if int8_path else onnx_path.with_name(onnx_path.stem + ".int8.onnx")
        quantize_int8(onnx_path, int8_out, calib_inputs)
        int8_model = load_onnx_model(int8_out, threads=threads)
        reference, quantised = fp32.run_numpy(calib_inputs), int8_model.run_numpy(calib_inputs)
        change = nme(quantised.astype(np.float64), reference.astype(np.float64), model.scheme)
        print(f"wrote {int8_out}: int8 vs fp32 on {len(calib_inputs)} calibration faces: mean landmark shift "
              f"{np.linalg.norm(quantised - reference, axis=-1).mean():.3f} px, NME(int8, fp32 as reference) "
              f"{100 * change.mean():.3f}%")
        networks["onnx_int8"] = int8_model.run_numpy
    return ExportResult(checkpoint, model, onnx_path, int8_out, difference, ok, networks)
