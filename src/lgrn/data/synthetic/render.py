"""Renderer of the synthetic faces: a cluttered background, shoulders, neck, hair, ears, shaded skin,
brows, eyes (sclera, iris, a dark pupil centred on the pupil landmark, lids), nose (drawn last of the
features, so it hides whatever lies behind it in a turned face), lips and mouth, and an optional fringe.
Every feature is a polygon through its own landmarks (brows 33-50, eyes 60-75, mouth 76-95, the jaw
silhouette through the visible contour points), so the ground truth is exact by construction. Only cv2
drawing primitives on a uint8 canvas; nothing per pixel in Python.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .draw import composite, ellipse, fill, polyline
from .shape import BROWS, EYE_LEFT, EYE_RIGHT, FaceGeometry

# BGR skin tones from light to dark; a face interpolates between two neighbours.
SKIN_TONES = np.array([(180, 205, 238), (140, 175, 222), (105, 145, 196), (75, 110, 160), (50, 75, 112)], float)
HAIR_COLOURS = np.array([(20, 20, 25), (30, 45, 70), (45, 75, 120), (90, 140, 190), (150, 150, 155),
                         (40, 50, 140)], float)
IRIS_COLOURS = np.array([(40, 60, 95), (120, 95, 60), (80, 110, 75), (110, 110, 105), (35, 45, 70)], float)
PUPIL_COLOUR = (8.0, 8.0, 10.0)   # the darkest thing on the face: the pupil landmark marks it


@dataclass
class Look:
    """Appearance of one face (colours BGR, sizes in IOD units)."""

    skin: np.ndarray
    hair: np.ndarray
    hair_style: int            # 0 none, 1 short, 2 long
    fringe: float              # gap between fringe and brows; 0 = no fringe
    hair_volume: float
    brow: np.ndarray
    iris: np.ndarray
    sclera: np.ndarray
    lash: np.ndarray
    lip: np.ndarray
    makeup: bool
    eyeshadow: np.ndarray
    clothes: np.ndarray
    light_side: float          # -1 light from image left .. 1 from image right


def sample_look(rng: np.random.Generator) -> Look:
    """Draw skin, hair, eye, lip colours and the hair style."""
    i = rng.integers(0, len(SKIN_TONES) - 1)
    skin = SKIN_TONES[i] + (SKIN_TONES[i + 1] - SKIN_TONES[i]) * rng.random() + rng.normal(0, 6, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.15)
    makeup = bool(rng.random() < 0.15)
    lip = skin * np.array([0.72, 0.68, 0.95]) + np.array([0, 0, 8])   # redder and darker than the skin
    if makeup:
        lip = np.array([(60, 40, 190), (90, 60, 170), (70, 30, 140), (110, 90, 200)][rng.integers(4)], float)
    # Keep lids clearly lighter than the pupil and the lips clearly apart from the skin.
    lash = np.maximum(skin * 0.45, 48.0)
    if np.linalg.norm(lip - skin) < 45:
        lip = lip * 0.8
    return Look(
        skin=skin, hair=hair, hair_style=int(rng.choice(3, p=[0.1, 0.5, 0.4])),
        fringe=float(rng.uniform(0.12, 0.3)) if rng.random() < 0.3 else 0.0,
        hair_volume=float(rng.uniform(0.15, 0.4)),
        brow=np.minimum(hair * 0.9, skin * 0.55),
        iris=IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.9, 1.2),
        sclera=np.array([225.0, 232.0, 238.0]) * rng.uniform(0.85, 1.0),
        lash=lash, lip=lip, makeup=makeup,
        eyeshadow=np.array([(140, 90, 110), (90, 70, 60), (170, 120, 150)][rng.integers(3)], float),
        clothes=rng.uniform(20, 235, 3), light_side=float(rng.uniform(-1, 1)))


def draw_background(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """A random colour (or two-colour gradient) plus 10-30 random shapes, slightly defocused."""
    size = canvas.shape[0]
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if rng.random() < 0.5:
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
        canvas[:] = (a * (1 - t) + b * t).astype(np.uint8)[:, None, :] if rng.random() < 0.5 else \
            (a * (1 - t) + b * t).astype(np.uint8)[None, :, :]
    else:
        canvas[:] = a.astype(np.uint8)
    for _ in range(int(rng.integers(10, 31))):
        kind = rng.integers(4)
        c = tuple(float(v) for v in rng.uniform(0, 255, 3))
        p = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.03, 0.3) * size
        if kind == 0:
            q = p + rng.uniform(-1, 1, 2) * r
            cv2.rectangle(canvas, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), c, -1)
        elif kind == 1:
            cv2.circle(canvas, (int(p[0]), int(p[1])), int(r * 0.6), c, -1)
        elif kind == 2:
            q = p + rng.uniform(-1, 1, 2) * r * 2
            cv2.line(canvas, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), c, int(rng.integers(1, 6)))
        else:
            pts = p + rng.uniform(-1, 1, (int(rng.integers(3, 7)), 2)) * r
            fill(canvas, pts, c)
    sigma = rng.uniform(0.0, 2.5)
    if sigma > 0.5:
        cv2.GaussianBlur(canvas, (0, 0), sigma, dst=canvas)


def _arc(xc: float, hw: float, y_ends: float, y_top: float, n: int) -> np.ndarray:
    """Half-ellipse over the head from (xc + hw, y_ends) over (xc, y_top) to (xc - hw, y_ends)."""
    t = np.linspace(0.0, np.pi, n)
    return np.stack([xc + hw * np.cos(t), y_ends - (y_ends - y_top) * np.sin(t)], axis=1)


def _head_outline(geo: FaceGeometry, y0: float, y1: float, grow: float) -> np.ndarray:
    """Image outline ``[M, 2]`` of the head between face-frame rows ``y0`` (top) and ``y1``: the convex
    hull of a dome (half ellipsoid above the ears) on a tapering cylinder of radius ``head radius + grow``
    whose back half is 1.4 times deeper, so the outline turns with the face."""
    s = geo.shape
    xc = 0.5 * (s[0, 0] + s[32, 0])
    yc = max(s[2:5, 1].mean() - 0.1, y0 + 0.1)     # the dome's equator, a little above the ears
    phi = np.linspace(0.0, 2 * np.pi, 24, endpoint=False)
    rows = []
    for y in np.linspace(y0, y1, 9):
        if y < yc:
            r = (geo.radius + grow) * np.sqrt(max(0.0, 1.0 - ((yc - y) / (yc - y0)) ** 2))
        else:   # below the ears the head narrows towards the jaw
            r = (geo.radius + grow) * (1.0 - 0.3 * (y - yc) / max(y1 - yc, 1e-6))
        z = r * np.cos(phi)
        rows.append(np.stack([xc + r * np.sin(phi), np.full_like(phi, y), np.where(z < 0, 1.4 * z, z) - 0.1], 1))
    hull = cv2.convexHull(geo.project(np.concatenate(rows)).astype(np.float32))
    return hull[:, 0, :].astype(np.float64)


def _draw_body_and_hair(canvas: np.ndarray, geo: FaceGeometry, look: Look) -> None:
    """Shoulders, long hair, the skull (skin), neck, hair cap and ears, all behind the face."""
    s = geo.shape
    xc = 0.5 * (s[0, 0] + s[32, 0])
    y_top = s[BROWS, 1].min() - geo.params.forehead
    y_ear = s[2:5, 1].mean()
    y_jaw = s[[6, 26], 1].mean()
    body = np.array([(-2.6, 4.0), (-2.2, 1.8), (-1.0, 1.45), (1.0, 1.45), (2.2, 1.8), (2.6, 4.0)])
    fill(canvas, geo.on_surface(body + (xc, 0), lift=-0.4), look.clothes)
    if look.hair_style == 2:   # long hair falls behind the neck onto the shoulders
        fill(canvas, _head_outline(geo, y_top - look.hair_volume, 1.5, 0.2), look.hair * 0.9)
    fill(canvas, _head_outline(geo, y_top - 0.1, y_jaw, 0.0), look.skin * 0.8)
    neck = np.array([(-0.48, 0.3), (0.48, 0.3), (0.56, 2.0), (-0.56, 2.0)]) + (xc, 0)
    fill(canvas, geo.on_surface(neck, lift=-0.3), look.skin * 0.78)
    if look.hair_style >= 1:
        fill(canvas, _head_outline(geo, y_top - look.hair_volume, y_ear - 0.1, 0.08), look.hair)
    # Ears on the sides of the head, seen edge-on when frontal, wider on the near side of a turned face.
    for side in (-1.0, 1.0):
        normal = np.array([side, 0.0, 0.25]) / np.hypot(1.0, 0.25)
        facing = float(geo.facing(normal[None])[0])
        if facing < -0.2:
            continue
        centre = geo.project(np.array([[xc + side * geo.radius * 0.98, y_ear, 0.0]]))[0]
        axes = (0.04 + 0.12 * max(facing, 0.0)) * geo.scale, 0.17 * geo.scale
        ellipse(canvas, centre, axes, geo.params.roll, look.skin * 0.9, cv2.LINE_AA)
        ellipse(canvas, centre, (axes[0] * 0.45, axes[1] * 0.55), geo.params.roll, look.skin * 0.7, cv2.LINE_AA)


def _draw_skin(canvas: np.ndarray, geo: FaceGeometry, look: Look) -> np.ndarray:
    """Shaded skin inside the silhouette; returns the face mask (the silhouette's pixels)."""
    size = canvas.shape[0]
    fill(canvas, geo.silhouette, look.skin * 0.86)
    centre = geo.silhouette.mean(axis=0) + np.array([look.light_side * 0.05 * geo.scale, 0.0])
    fill(canvas, centre + (geo.silhouette - centre) * 0.9, look.skin * 0.95, antialias=True)
    fill(canvas, centre + (geo.silhouette - centre) * 0.72, look.skin, antialias=True)
    face_mask = np.zeros((size, size), dtype=np.uint8)
    fill(face_mask, geo.silhouette, 255)
    return face_mask


def _draw_eye(canvas: np.ndarray, geo: FaceGeometry, look: Look, eye: np.ndarray, pupil: int) -> None:
    lm, sc, p = geo.landmarks, geo.scale, geo.params
    if look.makeup:
        lid = geo.shape[eye[:5]]
        shadow = np.concatenate([lid, (lid + (0.0, -0.09))[::-1]])
        fill(canvas, geo.on_surface(shadow, lift=-0.05), look.eyeshadow, antialias=True)
    crease = geo.on_surface(geo.shape[eye[1:4]] + (0.0, -0.035), lift=-0.05)
    polyline(canvas, crease, look.skin * 0.72, max(1, round(0.012 * sc)))
    iris_r = 0.062 * sc
    squash = (abs(np.cos(np.deg2rad(p.yaw))), abs(np.cos(np.deg2rad(p.pitch))))
    centre = lm[pupil]

    def layer(roi: np.ndarray, origin: np.ndarray) -> None:
        roi[:] = np.asarray(look.sclera, dtype=np.uint8)
        ellipse(roi, centre - origin, (iris_r * squash[0], iris_r * squash[1]), p.roll, look.iris, cv2.LINE_AA)
        ellipse(roi, centre - origin, (iris_r * 0.65 * squash[0], iris_r * 0.65 * squash[1]), p.roll,
                look.iris * 0.75, cv2.LINE_AA)
        ellipse(roi, centre - origin, (iris_r * 0.4 * squash[0], iris_r * 0.4 * squash[1]), p.roll, PUPIL_COLOUR,
                cv2.LINE_AA)

    composite(canvas, lm[eye], layer)
    polyline(canvas, lm[eye[:5]], look.lash, max(2, round(0.02 * sc)))
    polyline(canvas, np.concatenate([lm[eye[4:]], lm[eye[:1]]]), look.lash * 0.6 + look.skin * 0.4,
             max(1, round(0.01 * sc)))


def _draw_nose(canvas: np.ndarray, geo: FaceGeometry, look: Look) -> np.ndarray:
    """Nose over everything behind it; returns the nose mask (it hides non-nose landmarks)."""
    lm, sc, vis = geo.landmarks, geo.scale, geo.self_visible
    size = canvas.shape[0]
    fill(canvas, geo.nose_polygon, look.skin * 1.03)
    nose_mask = np.zeros((size, size), dtype=np.uint8)
    fill(nose_mask, geo.nose_polygon, 255)
    # Shadow along the bridge on the side away from the light.
    bridge = lm[51:55]
    direction = bridge[-1] - bridge[0]
    normal = np.array([-direction[1], direction[0]]) / max(np.linalg.norm(direction), 1e-6)
    side = -np.sign(look.light_side) if abs(look.light_side) > 0.1 else 1.0
    polyline(canvas, bridge[1:] + normal * side * 0.045 * sc, look.skin * 0.86, max(1, round(0.02 * sc)))
    # In a turned face the ridge (root -> tip -> far wing) is a visible profile line.
    yaw = geo.params.yaw
    if abs(yaw) > 12:
        far = 59 if yaw > 0 else 55
        ridge = [51, 52, 53, 54] + ([far] if vis[far] else [57])
        polyline(canvas, lm[ridge], look.skin * 0.72, max(1, round(0.02 * sc * abs(np.sin(np.deg2rad(yaw))) + 0.5)))
    s = geo.shape
    for a, b in ((55, 56), (58, 59)):
        if vis[a] and vis[b]:
            centre = geo.on_surface(0.5 * (s[a] + s[b]) + (0.0, -0.012), lift=0.12)[0]
            ellipse(canvas, centre, (0.032 * sc * abs(np.cos(np.deg2rad(geo.params.yaw))), 0.014 * sc),
                    geo.params.roll, look.skin * 0.3, cv2.LINE_AA)
    base = [i for i in range(55, 60) if vis[i]]
    if len(base) >= 2:
        polyline(canvas, lm[base], look.skin * 0.6, max(1, round(0.012 * sc)))
    ellipse(canvas, lm[54] + (0.0, -0.03 * sc), (0.03 * sc, 0.02 * sc), geo.params.roll,
            np.minimum(look.skin * 1.12 + 10, 255), cv2.LINE_AA)
    return nose_mask


def _draw_mouth(canvas: np.ndarray, geo: FaceGeometry, look: Look) -> None:
    lm, sc = geo.landmarks, geo.scale
    upper = lm[[76, 77, 78, 79, 80, 81, 82, 92, 91, 90, 89, 88]]
    lower = lm[[82, 83, 84, 85, 86, 87, 76, 88, 95, 94, 93, 92]]
    fill(canvas, upper, look.lip * 0.85)
    fill(canvas, lower, look.lip)
    inner = lm[88:96]
    opening = np.linalg.norm(lm[94] - lm[90])
    if opening > 1.5:
        teeth_h = min(0.045 * sc, 0.5 * opening)

        def layer(roi: np.ndarray, origin: np.ndarray) -> None:
            roi[:] = (35, 25, 60)
            top = lm[88:93] - origin
            fill(roi, np.concatenate([top, top[::-1] + (0.0, teeth_h)]), (215, 225, 230))

        composite(canvas, inner, layer)
    polyline(canvas, np.concatenate([inner, inner[:1]]), look.lip * 0.45, max(1, round(0.01 * sc)))


def _draw_fringe(canvas: np.ndarray, cover: np.ndarray, geo: FaceGeometry, look: Look) -> None:
    """Front hair over the forehead, ending ``look.fringe`` above the highest brow point; drawn into the
    cover mask too, so a landmark it ever reached would be marked hidden."""
    s = geo.shape
    xc = 0.5 * (s[0, 0] + s[32, 0])
    hw = 0.5 * (s[32, 0] - s[0, 0]) + 0.05
    y_top = s[BROWS, 1].min() - geo.params.forehead
    y_edge = s[BROWS, 1].min() - look.fringe
    x = np.linspace(xc - hw * 0.85, xc + hw * 0.85, 12)
    edge = np.stack([x, y_edge - 0.04 * np.abs(np.sin(x * 9.0))], axis=1)
    top = _arc(xc, hw, y_edge - 0.05, y_top - 0.1, 16)
    polygon = geo.on_surface(np.concatenate([edge, top]), lift=0.03)
    fill(canvas, polygon, look.hair)
    fill(cover, polygon, 255)


def draw_face(canvas: np.ndarray, geo: FaceGeometry, look: Look) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw the head on the canvas. Returns (face mask, nose mask, hair-cover mask), each ``[H, W]`` uint8."""
    size = canvas.shape[0]
    _draw_body_and_hair(canvas, geo, look)
    face_mask = _draw_skin(canvas, geo, look)
    lm = geo.landmarks
    for brow in (np.arange(33, 42), np.arange(42, 51)):
        fill(canvas, lm[brow], look.brow)
        polyline(canvas, lm[brow], look.brow, 1, closed=True)
    _draw_eye(canvas, geo, look, EYE_LEFT, 96)
    _draw_eye(canvas, geo, look, EYE_RIGHT, 97)
    _draw_mouth(canvas, geo, look)
    nose_mask = _draw_nose(canvas, geo, look)
    cover = np.zeros((size, size), dtype=np.uint8)
    if look.fringe > 0 and look.hair_style >= 1:
        _draw_fringe(canvas, cover, geo, look)
    return face_mask, nose_mask, cover
