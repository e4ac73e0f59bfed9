"""lgrn.data.gpu_augment (run on CPU): painted dots stay under the transformed landmarks, the CPU and
batched paths agree for the same parameters (image up to interpolation rounding; landmarks, visibility
and matrices exactly), parameter draws follow the CPU distributions and a torch.Generator."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lgrn.data.gpu_augment import GpuAugment, batch_generator, stack_params
from lgrn.data.transforms import TrainTransform
from lgrn.landmarks import get_scheme

SCHEME = get_scheme("wflw98")
RELEASE = dict(crop_size=128, is_color=True, interpolation="nearest", rotation=40, translate_rate=0.1,
               scale_min=0.9314, scale_max=1.0686, mirror=True, is_occluded=False, is_blurred=False)
PAINTED = (0, 16, 33, 60, 76, 96)


def painted_batch(batch: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background 230 with a black 3x3 dot on each PAINTED landmark (within 30 px of the centre,
    >= 12 px apart); unpainted landmarks sit in a corner."""
    images = np.full((batch, size, size, 3), 230, np.uint8)
    landmarks = np.full((batch, 98, 2), 3.0)
    centre = np.array([size / 2, size / 2])
    for b in range(batch):
        chosen: list[np.ndarray] = []
        while len(chosen) < len(PAINTED):
            p = np.round(centre + rng.uniform(-30, 30, 2))
            if all(np.linalg.norm(p - q) >= 12 for q in chosen):
                chosen.append(p)
        for index, p in zip(PAINTED, chosen, strict=True):
            landmarks[b, index] = p
            images[b, int(p[1]) - 1:int(p[1]) + 2, int(p[0]) - 1:int(p[0]) + 2] = 0
    return images, landmarks


def dark_centroids(image: np.ndarray, landmarks: np.ndarray, slots: list[int]) -> None:
    channel = image[0]
    dark = channel < (channel.min() + channel.max()) / 2
    claimed = np.zeros_like(dark)
    for slot in slots:
        x, y = landmarks[slot]
        x0, y0 = int(np.floor(x)) - 5, int(np.floor(y)) - 5
        ys, xs = np.nonzero(dark[y0:y0 + 12, x0:x0 + 12])
        assert xs.size, f"no dot under slot {slot}"
        assert np.hypot(xs.mean() + x0 - x, ys.mean() + y0 - y) <= 1.0, slot
        claimed[y0:y0 + 12, x0:x0 + 12] = True
    assert not (dark & ~claimed).any()


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_painted_dots_follow_landmarks(interpolation):
    rng = np.random.default_rng(0)
    images, landmarks = painted_batch(8, 160, rng)                 # 160 px input, centre crop to 128
    augment = GpuAugment(dict(RELEASE, interpolation=interpolation), SCHEME)
    params = augment.draw_params(8, 160, 160, torch.Generator().manual_seed(1))
    params["flip"] = torch.arange(8) % 2 == 1                     # with and without mirror
    out = augment(torch.from_numpy(images), torch.from_numpy(landmarks), params=params)
    assert out["image"].shape == (8, 3, 128, 128) and out["image"].dtype == torch.float32
    perm = np.asarray(SCHEME.flip_permutation)
    for b in range(8):
        flipped = bool(params["flip"][b])
        slots = [i for i in range(98) if perm[i] in PAINTED] if flipped else list(PAINTED)
        dark_centroids(out["image"][b].numpy(), out["landmarks"][b].numpy(), slots)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("is_color", [True, False])
def test_cpu_and_batched_paths_agree_for_the_same_parameters(interpolation, is_color):
    rng = np.random.default_rng(1)
    param = dict(RELEASE, interpolation=interpolation, is_color=is_color, is_occluded=True, is_blurred=True)
    cpu = TrainTransform(param, SCHEME)
    gpu = GpuAugment(param, SCHEME)
    # a smooth random texture (upsampled noise) so that interpolation differences stay small
    images = np.stack([cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (144, 144)) for _ in range(12)])
    landmarks = rng.uniform(10, 134, (12, 98, 2))
    visibility = rng.uniform(size=(12, 98)) > 0.2
    params = [cpu.draw(rng, 144, 144) for _ in range(12)]
    params[0].blur, params[1].blur, params[2].blur_angle, params[2].blur = 1, 2, 33.0, 2   # every blur kind
    expected = [cpu.apply(images[b], landmarks[b], params[b], visibility[b]) for b in range(12)]
    chw = torch.from_numpy(images).permute(0, 3, 1, 2)                                    # [B, 3, H, W] input
    out = gpu(chw, torch.from_numpy(landmarks), torch.from_numpy(visibility), params=stack_params(params))
    want = np.stack([e["image"] for e in expected])
    got = out["image"].numpy()
    diff = np.abs(want - got)
    if interpolation == "nearest":            # a few ties / fixed-point rounding flip to the next pixel
        assert (diff > 0.05).mean() < 0.005
    else:                                     # cv2 uses 1/32-px fixed-point weights
        assert diff.max() < 0.1
    assert diff.mean() < 0.01
    np.testing.assert_allclose(out["landmarks"].numpy(), np.stack([e["landmarks"] for e in expected]), atol=1e-4)
    np.testing.assert_array_equal(out["visibility"].numpy(), np.stack([e["visibility"] for e in expected]))
    np.testing.assert_allclose(out["matrix"].numpy(), np.stack([e["matrix"] for e in expected]), atol=1e-5)
    channels_last = gpu(torch.from_numpy(images), torch.from_numpy(landmarks), torch.from_numpy(visibility),
                        params=stack_params(params))
    torch.testing.assert_close(channels_last["image"], out["image"], rtol=0, atol=0)


def test_parameter_draws_follow_the_release_distributions():
    augment = GpuAugment(dict(RELEASE, is_occluded=True, is_blurred=True), SCHEME)
    p = augment.draw_params(4000, 128, 128, torch.Generator().manual_seed(0))
    q = augment.draw_params(4000, 128, 128, torch.Generator().manual_seed(0))
    r = augment.draw_params(4000, 128, 128, torch.Generator().manual_seed(1))
    assert all(torch.equal(p[k], q[k]) for k in p) and not torch.equal(p["angle"], r["angle"])
    assert p["angle"].abs().max() <= 40 and p["angle"].abs().max() > 39
    assert p["zoom"].min() >= 0.9314 and p["zoom"].max() <= 1.0686
    assert torch.equal(p["shift"], p["shift"].round()) and p["shift"].abs().max() == 13   # round(U(+-12.8))
    for flag, expected in [(p["flip"], 0.5), (p["occlude"], 0.5), (p["blur"] == 1, 0.2), (p["blur"] == 2, 0.2)]:
        assert abs(flag.double().mean().item() - expected) < 0.03
    box = p["box"]
    inside = (box[:, 0] > 0) & (box[:, 1] > 0) & (box[:, 2] < 128) & (box[:, 3] < 128)
    area = ((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]))[inside].double()
    assert abs(area.mean().item() / (0.2 * 128 * 128) - 1) < 0.03                       # 20 % of the crop
    aspect = ((box[:, 2] - box[:, 0]) / (box[:, 3] - box[:, 1]))[inside]
    assert aspect.min() > 0.38 and aspect.max() < 2.6
    assert p["colour"].min() == 0 and p["colour"].max() == 255
    off = GpuAugment(dict(RELEASE, mirror=False), SCHEME).draw_params(100, 128, 128, torch.Generator().manual_seed(0))
    assert not off["flip"].any() and not off["occlude"].any() and not off["blur"].any()


def test_bad_inputs():
    augment = GpuAugment(RELEASE, SCHEME)
    with pytest.raises(ValueError, match="uint8"):
        augment(torch.zeros(2, 3, 128, 128), torch.zeros(2, 98, 2))
    with pytest.raises(ValueError, match=r"landmarks \[2, 98, 2\]"):
        augment(torch.zeros(2, 128, 128, 3, dtype=torch.uint8), torch.zeros(2, 68, 2))


def test_batch_generator_is_a_function_of_seed_epoch_step():
    draw = lambda g: torch.rand(5, generator=g)  # noqa: E731
    assert torch.equal(draw(batch_generator(0, 3, 7)), draw(batch_generator(0, 3, 7)))
    assert not torch.equal(draw(batch_generator(0, 3, 7)), draw(batch_generator(0, 3, 8)))
    assert not torch.equal(draw(batch_generator(0, 3, 7)), draw(batch_generator(1, 3, 7)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_run():
    rng = np.random.default_rng(2)
    images = torch.from_numpy(np.stack([cv2.resize(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), (128, 128))
                                        for _ in range(16)]))
    landmarks = torch.from_numpy(rng.uniform(10, 118, (16, 98, 2)))
    augment = GpuAugment(dict(RELEASE, interpolation="bilinear", is_occluded=True, is_blurred=True), SCHEME)
    params = augment.draw_params(16, 128, 128, torch.Generator().manual_seed(0))
    on_cpu = augment(images, landmarks, params=params)
    on_cuda = augment.to("cuda")(images.cuda(), landmarks.cuda(), params=params)
    assert (on_cuda["image"].cpu() - on_cpu["image"]).abs().max() < 0.05
    torch.testing.assert_close(on_cuda["landmarks"].cpu(), on_cpu["landmarks"])
    assert torch.equal(on_cuda["visibility"].cpu(), on_cpu["visibility"])
