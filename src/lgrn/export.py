"""ONNX export, the ONNX Runtime backend and static int8 quantisation, plus `lgrn export`.

``export_onnx`` writes a single-file ONNX model (input ``images [B, C, S, S]`` float32 with a dynamic
batch axis, output ``landmarks [B, K, 2]`` in input pixels) and embeds what is needed to rebuild pre- and
post-processing: the resolved config, the landmark scheme, crop size, colour mode and the input
convention (BGR crop, per-image per-channel z-score), also written to a JSON sidecar for people.
``load_onnx_model`` returns an :class:`OnnxLandmarkModel` (torch in, torch out, like ``LandmarkModel``)
whose session is tuned for CPU latency (graph optimisation ALL, sequential execution, given threads).
``quantize_int8`` runs ONNX Runtime's static QDQ quantiser (int8 per-channel weights, uint8 activations,
only convolutions quantised so the small graph head stays float) calibrated on real face crops.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_bytes_atomic, write_text_atomic

__all__ = ["export_onnx", "load_onnx_model", "OnnxLandmarkModel", "session_options", "quantize_int8",
           "calibration_inputs", "max_landmark_difference", "read_metadata", "main", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME, OUTPUT_NAME = "images", "landmarks"
INPUT_CONVENTION = ("BGR face crop (square, 1.2 x landmark box), resized to crop_size, grayscale when is_color is "
                    "false; per-image per-channel z-score (population std, std < 1e-6 -> 1, no /255); NCHW float32. "
                    "Output: landmarks [B, K, 2] (x, y) in crop pixels.")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".jp2")


def _metadata(model: Any, precision: str) -> dict[str, str]:
    from . import __version__

    structure = model.config["structure"]
    return {"lgrn.version": __version__, "lgrn.config": json.dumps(model.config),
            "lgrn.scheme": json.dumps(model.scheme.to_dict()), "lgrn.crop_size": str(structure["crop_size"]),
            "lgrn.is_color": str(bool(structure["is_color"])).lower(), "lgrn.precision": precision,
            "lgrn.input": INPUT_CONVENTION}


def _sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _write_with_metadata(onnx_model: Any, path: Path, metadata: dict[str, str], sidecar: bool) -> None:
    del onnx_model.metadata_props[:]
    for key, value in metadata.items():
        onnx_model.metadata_props.add(key=key, value=value)
    write_bytes_atomic(path, onnx_model.SerializeToString())   # models under 2 GB: one protobuf
    if sidecar:
        readable = {k: (json.loads(v) if k in ("lgrn.config", "lgrn.scheme") else v) for k, v in metadata.items()}
        write_text_atomic(_sidecar_path(path), json.dumps(readable, indent=1) + "\n")


def export_onnx(model: torch.nn.Module, path: str | Path, opset: int = 18, sidecar: bool = True) -> Path:
    """Export an lgrn ``LandmarkModel`` (eval mode, CPU copy) to ``path``: one self-contained ONNX file
    with a dynamic batch axis and the lgrn metadata (plus ``<path stem>.json`` when ``sidecar``).
    Uses the torch.export-based exporter; its optimiser folds constants (including the static edge
    softmax of the graph head) and ONNX Runtime fuses BatchNorm into the convolutions at load time."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for attribute in ("config", "scheme"):
        if not hasattr(model, attribute):
            raise TypeError(f"export_onnx needs an lgrn LandmarkModel (with .config and .scheme), got "
                            f"{type(model).__name__}")
    structure = model.config["structure"]
    channels, size = (3 if structure["is_color"] else 1), int(structure["crop_size"])
    model = _cpu_eval_copy(model)
    # Batch 2, not 1: torch.export specialises a dimension of size 1 to a constant.
    example = torch.randn(2, channels, size, size)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        raw = Path(tmp) / "model.onnx"
        torch.onnx.export(model, (example,), str(raw), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamo=True, opset_version=opset, external_data=False, verbose=False,
                          dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=4096)}})
        onnx_model = onnx.load(str(raw))
    _write_with_metadata(onnx_model, path, _metadata(model, "fp32"), sidecar)
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints and its logger (e.g. "torchvision is not installed")."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _cpu_eval_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    clone = copy.deepcopy(model).cpu().float().eval()
    for attribute in ("config", "scheme"):
        setattr(clone, attribute, getattr(model, attribute))
    return clone


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The lgrn metadata of an exported model: from the ONNX file itself, else from its JSON sidecar.
    Keys: version, config (dict), scheme (dict), crop_size, is_color, precision, input."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as exc:   # onnx raises DecodeError & co. for a file that is not ONNX
        raise ValueError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if "lgrn.config" in props:
        data: dict[str, Any] = {k[len("lgrn."):]: v for k, v in props.items() if k.startswith("lgrn.")}
        data["config"], data["scheme"] = json.loads(data["config"]), json.loads(data["scheme"])
    elif _sidecar_path(path).is_file():
        sidecar = json.loads(_sidecar_path(path).read_text())
        data = {k[len("lgrn."):]: v for k, v in sidecar.items() if k.startswith("lgrn.")}
    else:
        raise ValueError(f"{path}: no lgrn metadata in the model and no sidecar {_sidecar_path(path).name}: export "
                         "it with `lgrn export` so that the landmark scheme and input size are known")
    missing = [k for k in ("config", "scheme", "crop_size", "is_color") if k not in data]
    if missing:
        raise ValueError(f"{path}: lgrn metadata lacks {missing}")
    data["crop_size"] = int(data["crop_size"])
    data["is_color"] = str(data["is_color"]).lower() == "true"
    return data


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime options for low-latency CPU inference: all graph optimisations (constant folding,
    Conv+BN fusion, QDQ -> QLinearConv), sequential execution, ``threads`` intra-op threads (None: ORT's
    default, one per physical core), one inter-op thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3    # keep ORT's shape-mismatch and fusion warnings off the console
    return options


class OnnxLandmarkModel:
    """An exported model in ONNX Runtime: ``__call__(images torch float32 [B, C, S, S]) -> torch float32
    [B, K, 2]`` (input pixels), ``run_numpy`` for numpy in/out. Attributes ``scheme`` (a Scheme),
    ``config`` (the resolved config dict), ``num_landmarks``, ``crop_size``, ``is_color``, ``precision``,
    ``path``, ``session``."""

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        import onnxruntime as ort

        from .landmarks import scheme_from_dict

        self.path = Path(path)
        metadata = read_metadata(self.path)
        self.config: dict = metadata["config"]
        self.scheme = scheme_from_dict(metadata["scheme"])
        self.num_landmarks = self.scheme.num_landmarks
        self.crop_size: int = metadata["crop_size"]
        self.is_color: bool = metadata["is_color"]
        self.precision: str = metadata.get("precision", "fp32")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError("device='cuda' requested but this onnxruntime has no CUDAExecutionProvider "
                                   "(install onnxruntime-gpu)")
            providers.insert(0, "CUDAExecutionProvider")
        elif device != "cpu":
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.session = ort.InferenceSession(str(self.path), session_options(threads), providers=providers)

    def run_numpy(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        channels = 3 if self.is_color else 1
        if images.ndim != 4 or images.shape[1:] != (channels, self.crop_size, self.crop_size):
            raise ValueError(f"{self.path.name}: expected images [B, {channels}, {self.crop_size}, {self.crop_size}], "
                             f"got {list(images.shape)}")
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run_numpy(images.detach().float().cpu().numpy())).to(images.device)

    def eval(self) -> "OnnxLandmarkModel":   # lets code written for nn.Module call .eval() harmlessly
        return self


def load_onnx_model(path: str | Path, threads: int | None = None, device: str = "cpu") -> OnnxLandmarkModel:
    """An exported lgrn ONNX model (fp32 or int8) ready to run; see :class:`OnnxLandmarkModel`."""
    return OnnxLandmarkModel(path, threads=threads, device=device)


def calibration_inputs(folder: str | Path, crop_size: int, is_color: bool = True, max_faces: int = 64,
                       detector: Any = None) -> np.ndarray:
    """Network inputs ``[N, C, S, S]`` float32 for quantisation calibration from the images under
    ``folder`` (recursive, sorted): faces found by the detector (default: ``default_detector()``) are cut as
    at inference;
    an image without a detected face is used whole (centre square), which suits folders of prepared
    face crops. Unreadable files are skipped; an empty result is an error."""
    from .detect import default_detector
    from .inference import ImageReadError, crop_faces, read_image

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
    import onnx
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


def _nme_on_test_set(networks: dict[str, Callable[[np.ndarray], np.ndarray]], config: dict, scheme: Any,
                     max_images: int | None, batch_size: int = 16) -> dict[str, float]:
    """Mean NME (``test_param.norm``) of each network on the config's test set (first ``max_images``)."""
    from .data.dataset import build_test_dataset
    from .metrics import nme

    dataset = build_test_dataset(config, scheme)
    count = len(dataset) if max_images is None else min(len(dataset), max_images)
    errors: dict[str, list[np.ndarray]] = {name: [] for name in networks}
    for start in range(0, count, batch_size):
        items = [dataset[i] for i in range(start, min(count, start + batch_size))]
        images = np.stack([np.asarray(item["image"], dtype=np.float32) for item in items])
        targets = np.stack([np.asarray(item["landmarks"], dtype=np.float64) for item in items])
        for name, network in networks.items():
            errors[name].append(nme(np.asarray(network(images), dtype=np.float64), targets, scheme,
                                    norm=config["test_param"]["norm"]))
    return {name: float(np.concatenate(values).mean()) for name, values in errors.items()}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lgrn export", description=(
        "Export an lgrn checkpoint to ONNX (dynamic batch axis, lgrn metadata embedded + JSON sidecar), check "
        "ONNX Runtime against PyTorch, and optionally add a static int8 model calibrated on face images."))
    parser.add_argument("--checkpoint", help="lgrn checkpoint (.pth / .pth.tar; default: the shipped 68-point "
                        "model, lgrn.pretrained.DEFAULT_MODEL)")
    parser.add_argument("--onnx", required=True, help="output fp32 ONNX file")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--int8", action="store_true", help="also write a static int8 (QDQ) model")
    parser.add_argument("--int8-out", help="int8 output (default: <onnx stem>.int8.onnx)")
    parser.add_argument("--calib", help="folder of face images (or prepared crops) for int8 calibration")
    parser.add_argument("--calib-max", type=int, default=64, help="faces used for calibration (default 64)")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="max allowed |ONNX fp32 - PyTorch| in input pixels (default 1e-3)")
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--eval", action="store_true",
                        help="report the NME of PyTorch, ONNX fp32 (and int8) on the checkpoint's test set")
    parser.add_argument("--eval-max", type=int, default=None, help="evaluate on the first N test images only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for --eval, e.g. test_param.val_source=data/WFLW/test/test_98pt.txt")
    return parser


def main(argv: list[str] | None = None) -> int:
    """`lgrn export`: checkpoint -> ONNX fp32 (+ int8), parity check, optional NME comparison."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.int8 and not args.calib:
        print("lgrn export: error: --int8 needs --calib DIR (face images for calibration)", file=sys.stderr)
        return 2
    try:
        return _export(args)
    except (FileNotFoundError, ValueError) as exc:   # missing / invalid checkpoint, calibration folder, config
        print(f"lgrn export: error: {exc}", file=sys.stderr)
        return 1


def _export(args: argparse.Namespace) -> int:
    from .config import resolve_config
    from .metrics import nme
    from .models import load_model

    if args.checkpoint is None:
        from .pretrained import pretrained_path

        args.checkpoint = str(pretrained_path())
    model = load_model(args.checkpoint)
    onnx_path = export_onnx(model, args.onnx, opset=args.opset)
    fp32 = load_onnx_model(onnx_path, threads=args.threads)
    print(f"wrote {onnx_path} (+ {_sidecar_path(onnx_path).name}): {fp32.num_landmarks} landmarks, scheme "
          f"{fp32.scheme.name}, input [B, {3 if fp32.is_color else 1}, {fp32.crop_size}, {fp32.crop_size}]")
    structure = model.config["structure"]
    generator = np.random.default_rng(0)
    inputs = generator.standard_normal((8, 3 if structure["is_color"] else 1, structure["crop_size"],
                                        structure["crop_size"])).astype(np.float32)
    calib = None
    if args.calib:
        calib = calibration_inputs(args.calib, structure["crop_size"], structure["is_color"], args.calib_max)
        inputs = np.concatenate([inputs, calib])
    from .inference import torch_network

    torch_run = torch_network(model, torch.device("cpu"))
    difference = max_landmark_difference(torch_run, fp32.run_numpy, inputs)
    ok = difference <= args.tolerance
    print(f"parity: max |ONNX fp32 - PyTorch| = {difference:.2e} px over {len(inputs)} inputs "
          f"(tolerance {args.tolerance:g}): {'OK' if ok else 'FAILED'}")
    networks: dict[str, Callable[[np.ndarray], np.ndarray]] = {"pytorch": torch_run, "onnx_fp32": fp32.run_numpy}
    if args.int8:
        int8_path = Path(args.int8_out) if args.int8_out else onnx_path.with_name(onnx_path.stem + ".int8.onnx")
        quantize_int8(onnx_path, int8_path, calib)
        int8 = load_onnx_model(int8_path, threads=args.threads)
        reference, quantised = fp32.run_numpy(calib), int8.run_numpy(calib)
        change = nme(quantised.astype(np.float64), reference.astype(np.float64), model.scheme)
        print(f"wrote {int8_path}: int8 vs fp32 on {len(calib)} calibration faces: mean landmark shift "
              f"{np.linalg.norm(quantised - reference, axis=-1).mean():.3f} px, NME(int8, fp32 as reference) "
              f"{100 * change.mean():.3f}%")
        networks["onnx_int8"] = int8.run_numpy
    if args.eval:
        config = resolve_config(model.config, source=f"{args.checkpoint}: config", overrides=args.set)
        scores = _nme_on_test_set(networks, config, model.scheme, args.eval_max)
        line = ", ".join(f"{name} {100 * value:.3f}%" for name, value in scores.items())
        print(f"test-set NME ({config['test_param']['norm']}): {line}")
        if "onnx_int8" in scores:
            print(f"int8 - fp32 NME change: {100 * (scores['onnx_int8'] - scores['onnx_fp32']):+.3f} points")
    if not ok:
        print(f"lgrn export: error: ONNX fp32 differs from PyTorch by {difference:.2e} px > {args.tolerance:g}",
              file=sys.stderr)
        return 1
    return 0
