"""Landmark networks behind one interface: numpy network inputs ``[B, C, S, S]`` float32 in (the crops of
:func:`lgrn.images.crop_faces`), numpy landmarks ``[B, K, 2]`` (x, y) in crop pixels out, whether the
network runs in PyTorch or in ONNX Runtime (docs/inference.md).

- :func:`torch_network` wraps a PyTorch ``LandmarkModel``; :func:`load_torch_network` loads one from an lgrn
  checkpoint.
- :func:`load_onnx_model` opens an exported lgrn ONNX file (fp32 or int8, written by ``lgrn.export``) as an
  :class:`OnnxLandmarkModel`, whose session is tuned for CPU latency (graph optimisation ALL, sequential
  execution, given threads); :func:`read_metadata` reads the lgrn metadata embedded in the file (or its
  JSON sidecar): config, landmark scheme, crop size, colour mode.
- :func:`torch_to_onnx` converts a PyTorch ``LandmarkModel`` to an ONNX graph (``lgrn.export`` writes it
  to a file with the metadata; :func:`torch_in_onnxruntime` runs it in memory).
- :func:`load_network` opens either kind of file as a :class:`LandmarkNetwork` (the runner plus the
  scheme, crop size, colour mode and config that pre- and post-processing need).

onnx and onnxruntime are optional dependencies (the ``onnx`` extra): they are imported only where an ONNX
model is read or run.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .landmarks import Scheme, scheme_from_dict
from .models import load_model

__all__ = ["Network", "LandmarkNetwork", "INPUT_NAME", "OUTPUT_NAME", "BACKENDS", "resolve_device", "torch_network",
           "load_torch_network", "torch_to_onnx", "read_metadata", "sidecar_path", "session_options",
           "onnx_session", "OnnxLandmarkModel", "load_onnx_model", "load_onnx_network", "torch_in_onnxruntime",
           "load_network"]

Network = Callable[[np.ndarray], np.ndarray]
INPUT_NAME, OUTPUT_NAME = "images", "landmarks"
BACKENDS = ("torch", "onnxruntime")


@dataclass
class LandmarkNetwork:
    """A network ready to run (``run``: numpy ``[B, C, S, S]`` float32 -> numpy ``[B, K, 2]`` crop pixels)
    with what pre- and post-processing need: the landmark ``scheme``, ``crop_size``, ``is_color``, the
    resolved ``config`` dict and the ``backend`` name ("torch" or "onnxruntime")."""

    run: Network
    scheme: Scheme
    crop_size: int
    is_color: bool
    config: dict
    backend: str

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self.run(inputs)


def resolve_device(device: str) -> str:
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when torch sees a GPU) -> "cpu" or "cuda"."""
    if device not in ("cpu", "cuda", "auto"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def torch_network(model: torch.nn.Module, device: torch.device) -> Network:
    """A PyTorch model as a ``Network``: numpy ``[N, C, S, S]`` float32 in, numpy landmarks out."""
    def run(inputs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(inputs)).to(device)).float().cpu().numpy()
    return run


def load_torch_network(path: str | Path, device: str = "cpu") -> LandmarkNetwork:
    """An lgrn checkpoint's model (its stored config and scheme) on ``device`` ("cpu" or "cuda")."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but torch.cuda.is_available() is False")
    model = load_model(path, map_location="cpu").to(device).eval()
    structure = model.config["structure"]
    return LandmarkNetwork(torch_network(model, torch.device(device)), model.scheme, int(structure["crop_size"]),
                           bool(structure["is_color"]), model.config, "torch")


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
    clone = copy.deepcopy(model).cpu().float().eval()
    for attribute in ("config", "scheme"):
        setattr(clone, attribute, getattr(model, attribute))
    return clone


def torch_to_onnx(model: torch.nn.Module, opset: int = 18) -> Any:
    """The ONNX graph (an ``onnx.ModelProto``, no lgrn metadata) of an lgrn ``LandmarkModel`` (eval mode, CPU
    copy): input ``images [B, C, S, S]`` float32 with a dynamic batch axis, output ``landmarks [B, K, 2]``
    in input pixels. Uses the torch.export-based exporter."""
    import onnx   # optional dependency (the onnx extra)

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
        return onnx.load(str(raw))


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar written beside an exported model (``<stem>.json``)."""
    return path.with_suffix(".json")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The lgrn metadata of an exported model: from the ONNX file itself, else from its JSON sidecar.
    Keys: version, config (dict), scheme (dict), crop_size, is_color, precision, input."""
    import onnx   # optional dependency (the onnx extra)

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
    elif sidecar_path(path).is_file():
        sidecar = json.loads(sidecar_path(path).read_text())
        data = {k[len("lgrn."):]: v for k, v in sidecar.items() if k.startswith("lgrn.")}
    else:
        raise ValueError(f"{path}: no lgrn metadata in the model and no sidecar {sidecar_path(path).name}: export "
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
    import onnxruntime as ort   # optional dependency (the onnx extra)

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3    # keep ORT's shape-mismatch and fusion warnings off the console
    return options


def onnx_session(model: str | Path | bytes, threads: int | None = None, device: str = "cpu") -> Any:
    """An ONNX Runtime ``InferenceSession`` for a model file (or serialised model bytes) with
    :func:`session_options`, on "cpu" or "cuda" (CUDA first, CPU for what CUDA cannot run)."""
    import onnxruntime as ort   # optional dependency (the onnx extra)

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("device='cuda' requested but this onnxruntime has no CUDAExecutionProvider "
                               "(install onnxruntime-gpu)")
        providers.insert(0, "CUDAExecutionProvider")
    elif device != "cpu":
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), session_options(threads),
                                providers=providers)


def _check_inputs(images: np.ndarray, is_color: bool, crop_size: int, where: str) -> np.ndarray:
    images = np.ascontiguousarray(images, dtype=np.float32)
    channels = 3 if is_color else 1
    if images.ndim != 4 or images.shape[1:] != (channels, crop_size, crop_size):
        raise ValueError(f"{where}: expected images [B, {channels}, {crop_size}, {crop_size}], "
                         f"got {list(images.shape)}")
    return images


class OnnxLandmarkModel:
    """An exported model in ONNX Runtime: ``run_numpy`` for numpy in/out, ``__call__(images torch float32
    [B, C, S, S]) -> torch float32 [B, K, 2]`` (input pixels) like ``LandmarkModel``. Attributes ``scheme``
    (a Scheme), ``config`` (the resolved config dict), ``num_landmarks``, ``crop_size``, ``is_color``,
    ``precision``, ``path``, ``session``."""

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu") -> None:
        self.path = Path(path)
        metadata = read_metadata(self.path)
        self.config: dict = metadata["config"]
        self.scheme = scheme_from_dict(metadata["scheme"])
        self.num_landmarks = self.scheme.num_landmarks
        self.crop_size: int = metadata["crop_size"]
        self.is_color: bool = metadata["is_color"]
        self.precision: str = metadata.get("precision", "fp32")
        self.session = onnx_session(self.path, threads, device)

    def run_numpy(self, images: np.ndarray) -> np.ndarray:
        images = _check_inputs(images, self.is_color, self.crop_size, self.path.name)
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.run_numpy(images.detach().float().cpu().numpy())).to(images.device)

    def eval(self) -> "OnnxLandmarkModel":   # lets code written for nn.Module call .eval() harmlessly
        return self


def load_onnx_model(path: str | Path, threads: int | None = None, device: str = "cpu") -> OnnxLandmarkModel:
    """An exported lgrn ONNX model (fp32 or int8) ready to run; see :class:`OnnxLandmarkModel`."""
    return OnnxLandmarkModel(path, threads=threads, device=device)


def load_onnx_network(path: str | Path, threads: int | None = None, device: str = "cpu") -> LandmarkNetwork:
    """:func:`load_onnx_model` as a :class:`LandmarkNetwork`."""
    model = load_onnx_model(path, threads=threads, device=device)
    return LandmarkNetwork(model.run_numpy, model.scheme, model.crop_size, model.is_color, model.config,
                           "onnxruntime")


def torch_in_onnxruntime(model: torch.nn.Module, threads: int | None = None, device: str = "cpu",
                         opset: int = 18) -> LandmarkNetwork:
    """A PyTorch ``LandmarkModel`` converted (:func:`torch_to_onnx`) and run in ONNX Runtime, in memory."""
    session = onnx_session(torch_to_onnx(model, opset=opset).SerializeToString(), threads, device)
    structure = model.config["structure"]
    crop_size, is_color = int(structure["crop_size"]), bool(structure["is_color"])

    def run(images: np.ndarray) -> np.ndarray:
        images = _check_inputs(images, is_color, crop_size, "onnxruntime model")
        return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]

    return LandmarkNetwork(run, model.scheme, crop_size, is_color, model.config, "onnxruntime")


def load_network(path: str | Path, backend: str | None = None, device: str = "cpu",
                 threads: int | None = None) -> LandmarkNetwork:
    """An lgrn checkpoint (``backend="torch"``, the default for it) or an exported ``.onnx`` file
    (``backend="onnxruntime"``, the default for it) ready to run. ``device``: "cpu", "cuda" or "auto";
    ``threads``: ONNX Runtime intra-op threads. A checkpoint in ONNX Runtime is converted to ONNX in
    memory first (:func:`torch_in_onnxruntime`)."""
    path = Path(path)
    is_onnx = path.suffix.lower() == ".onnx"
    backend = backend or ("onnxruntime" if is_onnx else "torch")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
    device = resolve_device(device)
    if backend == "torch":
        if is_onnx:
            raise ValueError(f"{path}: an ONNX file runs with backend='onnxruntime', not 'torch'")
        return load_torch_network(path, device)
    if not is_onnx:   # a checkpoint in ONNX Runtime: converted in memory
        return torch_in_onnxruntime(load_model(path), threads=threads, device=device)
    return load_onnx_network(path, threads=threads, device=device)
