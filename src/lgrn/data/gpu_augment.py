"""Batched augmentation on the training device (``train_param.augment_on: gpu``): the release's affine
(rotation, zoom, integer shift about the image centre), mirror after it, centre crop, border 127, the
random occluder (with visibility), optional blur and grayscale, and the per-image per-channel z-score,
applied to already-collated uint8 images with ``affine_grid`` + ``grid_sample``. Parameters are drawn
from a ``torch.Generator`` with the same distributions as ``transforms.TrainTransform`` and the same
matrices (``transforms.affine_matrix``), so for equal parameters both paths give the same image up to
interpolation rounding. Runs on any device; the dataset side is ``transforms.RawTransform``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..landmarks import Scheme
from .transforms import (BLUR_GAUSSIAN, augment_settings, BLUR_MOTION, BLUR_NONE, BLUR_PROB, BORDER_VALUE, GAUSSIAN_SIGMA,
                         MOTION_KERNEL_SIZE, OCCLUDER_AREA, OCCLUDER_ASPECT, OCCLUDER_PROB, AugmentParams)


def batch_generator(seed: int, epoch: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from (seed, epoch, step): the augmentation of a batch is then a function of
    its position in training, as on the CPU path, so an interrupted-and-resumed run draws the same."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(step)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator(device=device).manual_seed(int(state) & (2**63 - 1))


PARAM_KEYS = ("angle", "zoom", "shift", "flip", "occlude", "box", "colour", "blur", "blur_angle")


def stack_params(params: list[AugmentParams], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """CPU :class:`AugmentParams` of a batch -> the batched tensors :meth:`GpuAugment.forward` takes."""
    boxes = [p.occluder if p.occluder is not None else (0, 0, 0, 0) for p in params]
    return {
        "angle": torch.tensor([p.angle for p in params], dtype=torch.float64, device=device),
        "zoom": torch.tensor([p.zoom for p in params], dtype=torch.float64, device=device),
        "shift": torch.tensor([p.shift for p in params], dtype=torch.float64, device=device).reshape(-1, 2),
        "flip": torch.tensor([p.flip for p in params], dtype=torch.bool, device=device),
        "occlude": torch.tensor([p.occluder is not None for p in params], dtype=torch.bool, device=device),
        "box": torch.tensor(boxes, dtype=torch.int64, device=device).reshape(-1, 4),
        "colour": torch.tensor([p.colour for p in params], dtype=torch.float32, device=device).reshape(-1, 3),
        "blur": torch.tensor([p.blur for p in params], dtype=torch.int64, device=device),
        "blur_angle": torch.tensor([p.blur_angle for p in params], dtype=torch.float64, device=device),
    }


def batch_affine_matrix(params: dict[str, torch.Tensor], width: int, height: int, crop_size: int) -> torch.Tensor:
    """float64 ``[B, 2, 3]`` input pixels -> crop pixels; the batched twin of ``transforms.affine_matrix``."""
    a = torch.deg2rad(params["angle"])
    alpha, beta = params["zoom"] * torch.cos(a), params["zoom"] * torch.sin(a)
    cx, cy = width / 2 - 0.5, height / 2 - 0.5
    tx = (1 - alpha) * cx - beta * cy + params["shift"][:, 0] * params["zoom"]
    ty = beta * cx + (1 - alpha) * cy + params["shift"][:, 1] * params["zoom"]
    m = torch.stack([torch.stack([alpha, beta, tx], -1), torch.stack([-beta, alpha, ty], -1)], 1)
    sign = torch.where(params["flip"], -1.0, 1.0).to(m.dtype)
    m[:, 0, :] = m[:, 0, :] * sign[:, None]
    m[:, 0, 2] = torch.where(params["flip"], width + m[:, 0, 2], m[:, 0, 2])  # x' = w - x after the affine
    m[:, 0, 2] -= (width - crop_size) // 2
    m[:, 1, 2] -= (height - crop_size) // 2
    return m


def _to_homogeneous(m: torch.Tensor) -> torch.Tensor:
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=m.dtype, device=m.device).expand(m.shape[0], 1, 3)
    return torch.cat([m, bottom], 1)


def _pixel_to_normalised(width: int, height: int, dtype, device) -> torch.Tensor:
    # align_corners=False: pixel centre x <-> u = (2x + 1) / W - 1
    return torch.tensor([[2.0 / width, 0.0, 1.0 / width - 1.0], [0.0, 2.0 / height, 1.0 / height - 1.0],
                         [0.0, 0.0, 1.0]], dtype=dtype, device=device)


def motion_kernels(angles: torch.Tensor, size: int = MOTION_KERNEL_SIZE) -> torch.Tensor:
    """``[B, size, size]`` float32 line kernels, the formula of ``transforms.motion_kernel``."""
    r = size // 2
    grid = torch.arange(-r, r + 1, dtype=torch.float64, device=angles.device)
    dy, dx = torch.meshgrid(grid, grid, indexing="ij")
    a = torch.deg2rad(angles.to(torch.float64))[:, None, None]
    kernel = torch.clamp(1.0 - torch.abs(-torch.sin(a) * dx + torch.cos(a) * dy), min=0.0)
    return (kernel / kernel.sum(dim=(1, 2), keepdim=True)).to(torch.float32)


def _filter(images: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Per-sample 2-D correlation of ``[B, C, H, W]`` with kernels ``[B, kh, kw]``, reflect-101 border
    (cv2's default). A sum of shifted, weighted copies: elementwise work only, which beats a grouped
    convolution with one group per channel on CPU and is cheap on GPU for 5x5 or 1x13 kernels."""
    _, _, h, w = images.shape
    kh, kw = kernels.shape[-2:]
    padded = F.pad(images, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    out = torch.zeros_like(images)
    for i in range(kh):
        for j in range(kw):
            out.addcmul_(padded[:, :, i:i + h, j:j + w], kernels[:, i, j][:, None, None, None])
    return out


def _gaussian_blur(images: torch.Tensor, sigma: float = GAUSSIAN_SIGMA) -> torch.Tensor:
    ksize = int(round(sigma * 3 * 2 + 1)) | 1          # cv2's kernel size for uint8 images
    x = torch.arange(ksize, dtype=torch.float64, device=images.device) - ksize // 2
    k = torch.exp(-x * x / (2 * sigma * sigma))
    k = (k / k.sum()).to(images.dtype).expand(images.shape[0], ksize)
    return _filter(_filter(images, k[:, None, :]), k[:, :, None])


def _blur_subset(images: torch.Tensor, selected: torch.Tensor, blur) -> torch.Tensor:
    """Blur only the selected samples (most are not blurred), rounded to uint8 values as cv2 writes."""
    index = torch.nonzero(selected).flatten()
    if index.numel() == 0:
        return images
    images = images.clone()
    images[index] = torch.round(blur(images[index], index)).clamp_(0, 255)
    return images


class GpuAugment(torch.nn.Module):
    """``GpuAugment(train_param, scheme)``; ``forward(images, landmarks, visibility=None,
    generator=None, params=None)``.

    images: uint8 ``[B, H, W, 3]`` or ``[B, 3, H, W]`` (BGR), landmarks ``[B, K, 2]`` in image pixels.
    Returns dict(image float32 ``[B, C, S, S]`` normalised, landmarks float32 ``[B, K, 2]``, visibility
    bool ``[B, K]``, matrix float32 ``[B, 2, 3]`` image -> network input, params). ``params`` (from
    :meth:`draw_params` or :func:`stack_params`) fixes the augmentation; otherwise it is drawn from
    ``generator`` (default: torch's global generator of the generator's device)."""

    def __init__(self, train_param: dict, scheme: Scheme) -> None:
        super().__init__()
        interpolation = train_param.get("interpolation", "nearest")
        if interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"train_param.interpolation must be nearest or bilinear, got {interpolation!r}")
        self.mode = interpolation
        self.crop_size = int(train_param["crop_size"])
        self.is_color = bool(train_param["is_color"])
        for key, value in augment_settings(train_param).items():
            setattr(self, key, value)
        self.num_landmarks = scheme.num_landmarks
        self.register_buffer("flip_permutation", torch.tensor(scheme.flip_permutation, dtype=torch.int64),
                             persistent=False)

    def draw_params(self, batch: int, height: int, width: int,
                    generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Draw a batch of parameters on the generator's device (same distributions as the CPU path)."""
        device = generator.device if generator is not None else torch.device("cpu")

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            u = torch.rand(batch, *shape, generator=generator, device=device, dtype=torch.float64)
            return low + (high - low) * u

        size = self.crop_size
        shift = torch.stack([torch.round(uniform(-self.translate_rate * height, self.translate_rate * height)),
                             torch.round(uniform(-self.translate_rate * width, self.translate_rate * width))], -1)
        params = {"angle": uniform(-self.rotation, self.rotation), "shift": shift,
                  "zoom": uniform(self.scale_min, self.scale_max)}
        params["flip"] = (uniform(0, 1) > 0.5) & self.mirror
        aspect = uniform(*OCCLUDER_ASPECT)
        w = torch.sqrt(aspect * OCCLUDER_AREA * size * size)
        h = w / aspect
        cx, cy = uniform(0, size), uniform(0, size)
        box = torch.stack([torch.trunc(cx - w / 2), torch.trunc(cy - h / 2), torch.trunc(cx + w / 2),
                           torch.trunc(cy + h / 2)], -1)
        params["box"] = box.clamp(0, size).to(torch.int64)
        params["occlude"] = (uniform(0, 1) > OCCLUDER_PROB) & self.is_occluded
        params["colour"] = torch.randint(0, 256, (batch, 3), generator=generator, device=device).to(torch.float32)
        u = uniform(0, 1)
        blur = torch.where(u < BLUR_PROB, BLUR_GAUSSIAN, torch.where(u < 2 * BLUR_PROB, BLUR_MOTION, BLUR_NONE))
        params["blur"] = blur.to(torch.int64) * int(self.is_blurred)
        params["blur_angle"] = uniform(0.0, 180.0)
        return params

    def forward(self, images: torch.Tensor, landmarks: torch.Tensor, visibility: torch.Tensor | None = None,
                generator: torch.Generator | None = None,
                params: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"GpuAugment expects uint8 images [B, H, W, 3] or [B, 3, H, W], got "
                             f"{images.dtype} {tuple(images.shape)}")
        if images.shape[-1] == 3 and images.shape[1] != 3:
            images = images.permute(0, 3, 1, 2)
        elif images.shape[1] != 3 or images.shape[-1] == 3:
            raise ValueError(f"GpuAugment: cannot tell the channel axis of images {tuple(images.shape)}; "
                             "expected [B, H, W, 3] or [B, 3, H, W]")
        b, _, height, width = images.shape
        if landmarks.shape != (b, self.num_landmarks, 2):
            raise ValueError(f"GpuAugment expects landmarks [{b}, {self.num_landmarks}, 2], "
                             f"got {tuple(landmarks.shape)}")
        device, size = images.device, self.crop_size
        if params is None:
            params = self.draw_params(b, height, width, generator)
        params = {k: params[k].to(device) for k in PARAM_KEYS}

        m = batch_affine_matrix(params, width, height, size)                     # [B, 2, 3] float64
        theta = (_pixel_to_normalised(width, height, m.dtype, device) @ torch.linalg.inv(_to_homogeneous(m))
                 @ torch.linalg.inv(_pixel_to_normalised(size, size, m.dtype, device)))[:, :2]
        grid = F.affine_grid(theta.to(torch.float32), [b, 3, size, size], align_corners=False)
        # Border value 127: sample (image - 127) with zero padding, add 127 back.
        shifted = images.to(torch.float32) - BORDER_VALUE
        warped = F.grid_sample(shifted, grid, mode=self.mode, padding_mode="zeros", align_corners=False)
        warped = torch.round(warped + BORDER_VALUE).clamp_(0, 255)             # uint8 values, as cv2 writes

        out_landmarks = landmarks.to(torch.float64) @ m[:, :, :2].transpose(1, 2) + m[:, None, :, 2]
        vis = (torch.ones(b, self.num_landmarks, dtype=torch.bool, device=device) if visibility is None
               else visibility.to(device=device, dtype=torch.bool))
        flip = params["flip"]
        perm = self.flip_permutation.to(device)
        out_landmarks = torch.where(flip[:, None, None], out_landmarks[:, perm], out_landmarks)
        vis = torch.where(flip[:, None], vis[:, perm], vis)

        occlude = params["occlude"]
        if bool(occlude.any()):
            box = params["box"]
            coords = torch.arange(size, device=device)
            inside_x = (coords[None] >= box[:, 0:1]) & (coords[None] < box[:, 2:3])      # [B, S]
            inside_y = (coords[None] >= box[:, 1:2]) & (coords[None] < box[:, 3:4])
            mask = inside_y[:, :, None] & inside_x[:, None, :] & occlude[:, None, None]
            warped = torch.where(mask[:, None], params["colour"][:, :, None, None], warped)
            px = torch.floor(out_landmarks[..., 0] + 0.5)
            py = torch.floor(out_landmarks[..., 1] + 0.5)
            covered = ((px >= box[:, 0:1]) & (px < box[:, 2:3]) & (py >= box[:, 1:2]) & (py < box[:, 3:4])
                       & occlude[:, None])
            vis = vis & ~covered

        if not self.is_color:
            # cv2's fixed-point BGR -> gray (coefficients scaled by 2^14, rounded).
            bgr = warped.to(torch.int64)
            gray = (bgr[:, 0] * 1868 + bgr[:, 1] * 9617 + bgr[:, 2] * 4899 + 8192) >> 14
            warped = gray[:, None].to(torch.float32)
        blur = params["blur"]
        warped = _blur_subset(warped, blur == BLUR_GAUSSIAN, lambda x, _: _gaussian_blur(x))
        warped = _blur_subset(warped, blur == BLUR_MOTION,
                              lambda x, idx: _filter(x, motion_kernels(params["blur_angle"][idx])))

        mean = warped.mean(dim=(2, 3), keepdim=True)
        std = warped.std(dim=(2, 3), keepdim=True, unbiased=False)
        std = torch.where(std < 1e-6, torch.ones_like(std), std)
        image = (warped - mean) / std
        return {"image": image, "landmarks": out_landmarks.to(torch.float32), "visibility": vis,
                "matrix": m.to(torch.float32), "params": params}
