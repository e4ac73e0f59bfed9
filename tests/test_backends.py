"""lgrn.backends: PyTorch and ONNX Runtime networks behind one numpy-in / numpy-out interface
(``LandmarkNetwork``), the device and backend choices, and a checkpoint run in ONNX Runtime in memory
agreeing with PyTorch."""
from __future__ import annotations

import numpy as np
import pytest

from lgrn.backends import LandmarkNetwork, load_network, resolve_device
from lgrn.inference import FaceAligner

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _inputs(network: LandmarkNetwork, count: int = 3) -> np.ndarray:
    channels = 3 if network.is_color else 1
    shape = (count, channels, network.crop_size, network.crop_size)
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_torch_network_is_numpy_in_numpy_out(small_checkpoint):
    network = load_network(small_checkpoint)
    assert network.backend == "torch" and network.crop_size == 128
    out = network(_inputs(network))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    assert out.shape == (3, network.scheme.num_landmarks, 2)
    aligner = FaceAligner.from_network(network)
    assert aligner.backend == "torch" and aligner.scheme is network.scheme and aligner.config is network.config


def test_choices_are_checked(small_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="backend must be"):
        load_network(small_checkpoint, backend="tensorrt")
    with pytest.raises(ValueError, match="device must be"):
        load_network(small_checkpoint, device="tpu")
    with pytest.raises(ValueError, match="runs with backend='onnxruntime'"):
        load_network(tmp_path / "model.onnx", backend="torch")
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") in ("cpu", "cuda")


def test_checkpoint_in_onnxruntime_agrees_with_torch(small_checkpoint):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install -e .[onnx])")
    pytest.importorskip("onnx", reason="onnx is not installed (pip install -e .[onnx])")
    torch_net = load_network(small_checkpoint)
    onnx_net = load_network(small_checkpoint, backend="onnxruntime", threads=1)
    assert onnx_net.backend == "onnxruntime" and onnx_net.scheme.name == torch_net.scheme.name
    inputs = _inputs(torch_net)
    assert np.abs(onnx_net(inputs) - torch_net(inputs)).max() <= 1e-3
    with pytest.raises(ValueError, match="expected images"):
        onnx_net(inputs[:, :, :64, :64])
