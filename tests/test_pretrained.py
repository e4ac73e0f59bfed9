"""The shipped 68-point model: a weights-only file inside the package, its model card, a real accuracy
check on 300-W common test faces (ground-truth landmark boxes), `lgrn predict` without --checkpoint on a
real photo, and the packing of a training checkpoint into a shipped file."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lgrn import FaceAligner, load_config
from lgrn.checkpoint import load_checkpoint, save_checkpoint
from lgrn.data.readers import read_300w
from lgrn.landmarks import get_scheme
from lgrn.metrics import nme
from lgrn.models import build_model, load_model
from lgrn.cli.predict import main as predict_main
from lgrn.pretrained import (DEFAULT_MODEL, available_models, model_card_path, pack_checkpoint,
                             pretrained_path)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SCHEME = get_scheme("300w68")


@pytest.fixture(scope="module")
def test_faces(shared_data):
    """Every 40th face of the 300-W common test set (14 faces, HELEN and LFPW)."""
    samples = read_300w(shared_data / "300w_recropped", "common")
    assert len(samples) == 554
    return samples[::40]


def test_shipped_file_is_weights_only_small_and_documented():
    path = pretrained_path()
    assert DEFAULT_MODEL in available_models() and path.stat().st_size <= 15 * 2 ** 20
    raw = torch.load(path, map_location="cpu", weights_only=True)   # plain tensors and containers only
    assert raw["config"]["structure"]["num_kpts"] == 68 and raw["scheme"]["name"] == "300w68"
    assert {v.dtype for v in raw["state_dict"].values() if v.is_floating_point()} == {torch.float16}
    assert "optimizer" not in raw and "rng" not in raw
    card = model_card_path().read_text()
    for needed in ("300-W", "non-commercial", "inter-ocular", "lgrn train", "128"):
        assert needed in card, needed
    with pytest.raises(ValueError, match="unknown pretrained model 'nope'"):
        pretrained_path("nope")


def test_shipped_model_is_accurate_on_real_test_faces(test_faces):
    aligner = FaceAligner.from_pretrained()
    assert aligner.scheme.name == "300w68" and aligner.crop_size == 128
    errors = []
    for sample in test_faces:
        gt = np.asarray(sample.landmarks)
        box = np.concatenate([gt.min(axis=0), gt.max(axis=0)])[None]   # the ground-truth landmark box
        result = aligner.predict(str(sample.image_path), boxes=box)
        errors.append(nme(result.landmarks.astype(np.float64), gt[None], SCHEME, "inter_ocular")[0])
    errors = np.array(errors)
    assert errors.mean() < 0.06, errors
    assert errors.max() < 0.15, errors
    # the ONNX Runtime backend gives the same landmarks
    onnx = FaceAligner.from_pretrained(backend="onnxruntime")
    sample = test_faces[0]
    gt = np.asarray(sample.landmarks)
    box = np.concatenate([gt.min(axis=0), gt.max(axis=0)])[None]
    np.testing.assert_allclose(onnx.predict(str(sample.image_path), boxes=box).landmarks,
                               aligner.predict(str(sample.image_path), boxes=box).landmarks, atol=1e-2)


def test_predict_without_checkpoint_on_a_real_photo(test_faces, tmp_path, capsys):
    sample = test_faces[1]
    out = tmp_path / "out"
    assert predict_main([str(sample.image_path), "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "landmarks.json").read_text())
    assert data["scheme"] == "300w68" and data["num_landmarks"] == 68 and len(data["faces"]) >= 1
    gt = np.asarray(sample.landmarks)
    centre = (gt.min(axis=0) + gt.max(axis=0)) / 2
    # the detected face over the annotated one carries landmarks close to the annotation
    face = min(data["faces"], key=lambda f: np.linalg.norm((np.add(f["box"][:2], f["box"][2:]) / 2) - centre))
    error = nme(np.array(face["landmarks"])[None], gt[None], SCHEME, "inter_ocular")[0]
    assert error < 0.1, error
    assert (out / "landmarks.csv").is_file() and (out / "annotated" / sample.image_path.name).is_file()
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == f"pretrained:{DEFAULT_MODEL}"


def test_pack_checkpoint_keeps_the_model_in_fp16(tmp_path, repo_root):
    config = load_config(repo_root / "experiments" / "synthetic" / "tiny.yaml")
    model = build_model(config)
    for param in model.parameters():
        param.data.normal_(0, 0.05)
    state = model.state_dict()
    state_key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 10)
    source = tmp_path / "train.pth.tar"
    save_checkpoint(source, {"state_dict": state, "config": model.config, "scheme": model.scheme.to_dict(),
                             "optimizer": {"state": {}}, "rng": {"torch": torch.get_rng_state()}, "epoch": 7,
                             "best_nme": 0.05, "lgrn_version": "0.1.0"})
    target = pack_checkpoint(source, tmp_path / "shipped.pth", card={"nme_io": 3.5})
    packed = load_checkpoint(target)
    assert "optimizer" not in packed and "rng" not in packed and packed["epoch"] == 7
    assert packed["model_card"] == {"nme_io": 3.5}
    assert packed["state_dict"][state_key].dtype == torch.float16
    np.testing.assert_allclose(packed["state_dict"][state_key].float(), state[state_key], rtol=1e-3, atol=1e-4)
    assert target.stat().st_size < 0.6 * source.stat().st_size
    reloaded = load_model(target)                   # loads back into a float32 model
    assert next(reloaded.parameters()).dtype == torch.float32
    images = torch.randn(2, 3, config["structure"]["crop_size"], config["structure"]["crop_size"])
    with torch.no_grad():
        np.testing.assert_allclose(reloaded(images), model.eval()(images), atol=1.0)   # pixels


def test_flip_averaging_is_exactly_mirror_equivariant(test_faces):
    """With flip=True the prediction for a mirrored crop is the mirror of the prediction for the crop
    (landmarks mirrored and left/right indices swapped), to float precision; without it, only roughly."""
    aligner = FaceAligner.from_pretrained(flip=True)
    plain = FaceAligner.from_pretrained()
    sample = test_faces[2]
    gt = np.asarray(sample.landmarks)
    import cv2

    image = cv2.imread(str(sample.image_path))
    box = np.concatenate([gt.min(axis=0), gt.max(axis=0)])[None]
    inputs, _ = aligner.crop(image, plain.box_calibration.crop_boxes(box))
    mirrored = np.ascontiguousarray(inputs[..., ::-1])
    perm = list(SCHEME.flip_permutation)

    def mirror(points):
        out = points[:, perm].copy()
        out[..., 0] = 127 - out[..., 0]
        return out

    np.testing.assert_allclose(aligner.run_network(mirrored), mirror(aligner.run_network(inputs)), atol=1e-3)
    assert np.abs(plain.run_network(mirrored) - mirror(plain.run_network(inputs))).max() > 1e-2
    # and it is at least as accurate on this face as the plain prediction, give or take a little
    with_flip = nme(aligner.predict(image, boxes=box, color="bgr").landmarks, gt[None], SCHEME)[0]
    without = nme(plain.predict(image, boxes=box, color="bgr").landmarks, gt[None], SCHEME)[0]
    assert with_flip < without * 1.2 + 0.005


def test_export_without_checkpoint_exports_the_shipped_model(tmp_path, capsys):
    from lgrn.cli.export import main as export_main

    assert export_main(["--onnx", str(tmp_path / "lgrn68.onnx")]) == 0
    out = capsys.readouterr().out
    assert "68 landmarks, scheme 300w68, input [B, 3, 128, 128]" in out and "OK" in out
    assert (tmp_path / "lgrn68.onnx").stat().st_size > 1_000_000 and (tmp_path / "lgrn68.json").is_file()
