"""Occluders and camera degradations for the synthetic faces. Occluders (textured rectangles, smooth
blobs, hands with fingers and an arm, sunglasses) are drawn with a ``Painter`` into the image and into a
coverage mask at once, so a landmark is marked occluded exactly when its pixel was painted over.
Degradations (blur, a lighting gradient with a colour cast, sensor noise) come last and never move
anything: they only change pixel values.
"""
from __future__ import annotations

import cv2
import numpy as np

from .draw import Painter
from .render import SKIN_TONES
from .shape import FaceGeometry

OCCLUDER_KINDS = ("rectangle", "blob", "hand", "glasses")
OCCLUDER_PROBS = (0.3, 0.3, 0.28, 0.12)


def _rectangle(painter: Painter, centre: np.ndarray, face: float, rng: np.random.Generator) -> None:
    size = (rng.uniform(0.2, 0.55) * face, rng.uniform(0.12, 0.4) * face)
    corners = cv2.boxPoints(((float(centre[0]), float(centre[1])), size, float(rng.uniform(-45, 45))))
    painter.polygon(corners, rng.uniform(0, 255, 3))
    if rng.random() < 0.5:   # stripes between two opposite edges stay inside the (convex) rectangle
        stripe = rng.uniform(0, 255, 3)
        for t in np.linspace(0.15, 0.85, int(rng.integers(2, 6))):
            painter.line(corners[0] + (corners[1] - corners[0]) * t, corners[3] + (corners[2] - corners[3]) * t,
                         stripe, int(max(1, 0.02 * face)))


def _blob(painter: Painter, centre: np.ndarray, face: float, rng: np.random.Generator) -> None:
    theta = np.linspace(0, 2 * np.pi, 28, endpoint=False)
    radius = np.full_like(theta, rng.uniform(0.1, 0.28) * face)
    for k in (2, 3, 4):
        radius *= 1 + rng.uniform(0, 0.2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    painter.polygon(centre + np.stack([np.cos(theta), np.sin(theta)], axis=1) * radius[:, None],
                    rng.uniform(0, 255, 3))


def _hand(painter: Painter, centre: np.ndarray, face: float, rng: np.random.Generator) -> None:
    """A palm, four fingers reaching towards ``centre``, a thumb and the arm leading out of the picture."""
    angle = rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(angle), np.sin(angle)])      # finger direction
    v = np.array([-u[1], u[0]])
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.85, 1.1)
    palm = centre - u * 0.2 * face
    finger_w = 0.055 * face
    painter.line(palm, palm - u * 0.8 * face, skin * 0.9, int(0.17 * face))
    painter.ellipse(palm, (0.13 * face, 0.11 * face), float(np.degrees(angle)), skin)
    for offset, length in zip((-0.075, -0.025, 0.025, 0.075), rng.uniform(0.15, 0.24, 4)):
        base = palm + u * 0.08 * face + v * offset * face
        painter.line(base, base + u * length * face, skin, int(finger_w))
    thumb_dir = u * np.cos(0.9) + v * np.sin(0.9) * rng.choice([-1.0, 1.0])
    base = palm + np.sign(thumb_dir @ v) * v * 0.09 * face
    painter.line(base, base + thumb_dir * 0.13 * face, skin * 0.95, int(finger_w * 1.1))


def _glasses(painter: Painter, geo: FaceGeometry, rng: np.random.Generator) -> None:
    left, right = geo.landmarks[96], geo.landmarks[97]
    tint = rng.uniform(15, 90, 3)
    lens = (0.23 * geo.scale, rng.uniform(0.13, 0.18) * geo.scale)
    for centre in (left, right):
        painter.ellipse(centre, lens, geo.params.roll, tint)
    painter.line(left, right, tint * 0.7, int(max(2, 0.03 * geo.scale)))


def draw_occluders(canvas: np.ndarray, cover: np.ndarray, geo: FaceGeometry, rng: np.random.Generator) -> list[str]:
    """Draw one (80 %) or two occluders near random landmarks; returns their kinds. ``cover [H, W]`` uint8
    receives 255 on every painted pixel."""
    painter = Painter(canvas, cover)
    landmarks = geo.landmarks
    face = float((landmarks.max(axis=0) - landmarks.min(axis=0)).max())
    kinds = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        kind = OCCLUDER_KINDS[int(rng.choice(len(OCCLUDER_KINDS), p=OCCLUDER_PROBS))]
        centre = landmarks[rng.integers(len(landmarks))] + rng.normal(0.0, 0.06 * face, 2)
        if kind == "rectangle":
            _rectangle(painter, centre, face, rng)
        elif kind == "blob":
            _blob(painter, centre, face, rng)
        elif kind == "hand":
            _hand(painter, centre, face, rng)
        else:
            _glasses(painter, geo, rng)
        kinds.append(kind)
    return kinds


def degrade(image: np.ndarray, rng: np.random.Generator) -> dict[str, int]:
    """In place: optional blur (Gaussian or motion), a linear lighting gradient with a global gain and a
    colour cast, Gaussian sensor noise. Returns the WFLW-style flags ``{"illumination", "blur"}``."""
    size = image.shape[0]
    u = rng.random()
    blur = 0
    if u < 0.07:
        length = int(rng.integers(7, 12))
        kernel = np.zeros((length, length), dtype=np.float32)
        a = rng.uniform(0, np.pi)
        c = (length - 1) / 2
        d = np.array([np.cos(a), np.sin(a)]) * c
        cv2.line(kernel, (int(round(c - d[0])), int(round(c - d[1]))), (int(round(c + d[0])), int(round(c + d[1]))),
                 1.0, 1)
        cv2.filter2D(image, -1, kernel / kernel.sum(), dst=image)
        blur = 1
    elif u < 0.17:
        cv2.GaussianBlur(image, (0, 0), rng.uniform(1.6, 2.6), dst=image)
        blur = 1
    elif u < 0.75:
        cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.0), dst=image)
    strength = rng.uniform(0.0, 0.25) if rng.random() < 0.75 else rng.uniform(0.3, 0.55)
    gain = rng.uniform(0.8, 1.15)
    theta = rng.uniform(0, 2 * np.pi)
    cast = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    coords = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / (size / 2)
    ramp = gain * (1.0 + strength * (np.cos(theta) * coords[None, :] + np.sin(theta) * coords[:, None]))
    out = image.astype(np.float32)
    out *= ramp[:, :, None]
    out *= cast
    sigma = rng.uniform(0.0, 6.0) if rng.random() < 0.9 else rng.uniform(6.0, 12.0)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(sigma)
    out += 0.5
    np.clip(out, 0, 255, out=out)
    image[:] = out.astype(np.uint8)
    return {"illumination": int(strength >= 0.3), "blur": blur}
