"""Face geometry for the synthetic generator: a random 98-point WFLW shape (PCA identity from the
WFLW shape statistics + explicit expression offsets), lifted to 3-D on a cylinder-like head with a depth
profile (nose out, eyes in), rotated by yaw / pitch / roll, projected orthographically into the image and
placed so that the landmark box fills about 1/1.2 of the crop (the release's crop rule). Self-occlusion
of the contour and the nose wings is decided by surface normals (a landmark whose rotated normal faces
away from the camera is hidden; what the nose covers is decided from its drawn pixels), and the face
silhouette replaces hidden boundary stretches by the head's limb, so hidden far-side contour
points lie inside the drawn face exactly as in real annotations. Pure numpy; no drawing here.

Face frame (the shape model's): x right, y down, centred, eye line horizontal, inter-ocular distance 1;
z points towards the camera.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHAPE_MODEL_PATH = Path(__file__).with_name("wflw98_shape_model.json")
NUM_LANDMARKS = 98

# WFLW 98-point layout (index groups).
CONTOUR = np.arange(0, 33)
BROWS = np.arange(33, 51)
NOSE = np.arange(51, 60)
EYE_LEFT = np.arange(60, 68)      # image-left eye; its pupil is 96
EYE_RIGHT = np.arange(68, 76)     # image-right eye; its pupil is 97
MOUTH_OUTER = np.arange(76, 88)
MOUTH_INNER = np.arange(88, 96)
PUPILS = np.array([96, 97])

# Identity uses every PCA mode scaled by its std, except the antisymmetric modes 0 and 4, which in WFLW
# mostly encode yaw and head tilt: the explicit 3-D pose below models those, so they are damped.
IDENTITY_MODE_WEIGHT = np.array([0.15, 1.0, 1.0, 1.0, 0.15, 1.0, 1.0, 1.0, 0.6, 0.6])

HEAD_RADIUS = 0.95        # cylinder radius (IOD units); the mean contour reaches |x| = 0.86
VERTICAL_FALLOFF = 0.12   # z -= VERTICAL_FALLOFF * (y - FALLOFF_CENTRE)^2: forehead and chin recede
FALLOFF_CENTRE = -0.2

# Depth offsets above the head surface, per landmark (IOD units).
DEPTH_OFFSET = np.zeros(NUM_LANDMARKS)
DEPTH_OFFSET[51:55] = (0.06, 0.14, 0.24, 0.34)             # nose bridge rising to the tip
DEPTH_OFFSET[55:60] = (0.10, 0.18, 0.22, 0.18, 0.10)       # alae, nostrils, subnasale
DEPTH_OFFSET[60:76] = -0.06                                # eyes sit in their sockets
DEPTH_OFFSET[PUPILS] = -0.06                               # same plane as the lids: stays inside the eye
DEPTH_OFFSET[BROWS] = 0.02
DEPTH_OFFSET[76:96] = 0.05
# The nose wings face sideways: (landmark, angle of its normal from +z towards +x, degrees).
NOSE_NORMAL_ANGLES = {55: -55.0, 56: -25.0, 57: 0.0, 58: 25.0, 59: 55.0}


@dataclass(frozen=True)
class ShapeModel:
    """Procrustes-aligned mean shape ``[98, 2]``, PCA ``modes [M, 98, 2]`` (unit vectors), ``mode_std [M]``."""

    mean: np.ndarray
    modes: np.ndarray
    mode_std: np.ndarray


@functools.lru_cache(maxsize=4)
def load_shape_model(path: str | None = None) -> ShapeModel:
    """Read the shape statistics (default: the packaged WFLW 98-point model)."""
    path = Path(path) if path is not None else SHAPE_MODEL_PATH
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"shape model not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    for key in ("mean", "modes", "mode_std"):
        if key not in data:
            raise ValueError(f"{path}: missing field '{key}'")
    mean = np.asarray(data["mean"], dtype=np.float64)
    modes = np.asarray(data["modes"], dtype=np.float64)
    mode_std = np.asarray(data["mode_std"], dtype=np.float64)
    if mean.shape != (NUM_LANDMARKS, 2):
        raise ValueError(f"{path}: field 'mean' must be [{NUM_LANDMARKS}, 2], got {list(mean.shape)}")
    if modes.ndim != 3 or modes.shape[1:] != (NUM_LANDMARKS, 2):
        raise ValueError(f"{path}: field 'modes' must be [M, {NUM_LANDMARKS}, 2], got {list(modes.shape)}")
    if mode_std.shape != (modes.shape[0],):
        raise ValueError(f"{path}: field 'mode_std' must hold {modes.shape[0]} values, got {mode_std.size}")
    return ShapeModel(mean=mean, modes=modes, mode_std=mode_std)


@dataclass(frozen=True)
class FaceParams:
    """One face's shape and pose. Lengths in IOD units, angles in degrees.

    ``yaw`` > 0 turns the face towards image right (its image-right side goes away from the camera),
    ``pitch`` > 0 tilts it up, ``roll`` rotates it in the image plane.
    """

    identity: np.ndarray
    mouth_open: float
    smile: float
    brow_raise: float
    eye_open: float
    gaze: tuple[float, float]
    yaw: float
    pitch: float
    roll: float
    forehead: float


def sample_face_params(rng: np.random.Generator, num_modes: int) -> FaceParams:
    """Draw identity, expression and pose. A quarter of the faces get a large yaw (25..45 degrees)."""
    identity = np.clip(rng.standard_normal(num_modes), -2.5, 2.5)
    u = rng.random()
    mouth_open = 0.0 if u < 0.6 else (rng.uniform(0.0, 0.1) if u < 0.88 else rng.uniform(0.1, 0.3))
    smile = float(np.clip(rng.normal(0.2, 0.4), -0.5, 1.2))
    brow_raise = float(np.clip(rng.normal(0.0, 0.4), -0.6, 1.2))
    eye_open = rng.uniform(0.75, 1.2)
    gaze = (rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0))   # fractions of the allowed pupil travel
    if rng.random() < 0.25:
        yaw = rng.choice([-1.0, 1.0]) * rng.uniform(25.0, 45.0)
    else:
        yaw = float(np.clip(rng.normal(0.0, 10.0), -25.0, 25.0))
    pitch = float(np.clip(rng.normal(0.0, 7.0), -18.0, 18.0))
    roll = float(np.clip(rng.normal(0.0, 8.0), -30.0, 30.0))
    return FaceParams(identity=identity, mouth_open=float(mouth_open), smile=smile, brow_raise=brow_raise,
                      eye_open=float(eye_open), gaze=(float(gaze[0]), float(gaze[1])), yaw=float(yaw),
                      pitch=pitch, roll=roll, forehead=float(rng.uniform(0.5, 0.7)))


def face_shape_2d(model: ShapeModel, params: FaceParams) -> np.ndarray:
    """The frontal 2-D shape ``[98, 2]`` (face frame): mean + identity modes + expression offsets."""
    weights = np.ones(len(model.mode_std))
    n = min(len(weights), len(IDENTITY_MODE_WEIGHT))
    weights[:n] = IDENTITY_MODE_WEIGHT[:n]
    coeffs = params.identity[: len(weights)] * weights * model.mode_std
    shape = model.mean + np.tensordot(coeffs, model.modes, axes=1)

    # Mouth opening: the lower lip and the jaw drop, the upper inner lip lifts a little.
    o = params.mouth_open
    for idx, w in ((83, 0.5), (84, 0.85), (85, 1.0), (86, 0.85), (87, 0.5), (93, 0.8), (94, 1.0), (95, 0.8),
                   (88, 0.15), (92, 0.15)):
        shape[idx, 1] += o * w
    shape[[89, 90, 91], 1] -= 0.05 * o
    for k in CONTOUR:
        shape[k, 1] += 0.55 * o * max(0.0, 1.0 - abs(k - 16) / 9.0)
    # Smile: mouth corners out and up, their neighbours half as much.
    s = params.smile
    for idx, side, w in ((76, -1, 1.0), (88, -1, 1.0), (77, -1, 0.5), (87, -1, 0.5),
                         (82, 1, 1.0), (92, 1, 1.0), (81, 1, 0.5), (83, 1, 0.5)):
        shape[idx] += w * s * np.array([0.05 * side, -0.04])
    # Brow raise: inner ends move most (surprise), frown when negative.
    brow_w = np.full(len(BROWS), 0.7)
    brow_w[np.isin(BROWS, [37, 38, 42, 50])] = 1.0
    shape[BROWS, 1] -= 0.07 * params.brow_raise * brow_w
    # Eye openness about each eye's centre line; the pupil follows a clipped gaze inside the eye.
    for eye, pupil in ((EYE_LEFT, 96), (EYE_RIGHT, 97)):
        cy = shape[eye, 1].mean()
        shape[eye, 1] = cy + (shape[eye, 1] - cy) * params.eye_open
        width = shape[eye, 0].max() - shape[eye, 0].min()
        height = shape[eye, 1].max() - shape[eye, 1].min()
        centre = np.array([shape[eye, 0].mean(), cy])
        shape[pupil] = centre + np.array([params.gaze[0] * 0.15 * width, params.gaze[1] * 0.12 * height])
    return shape


def head_radius(shape: np.ndarray) -> float:
    """Cylinder radius for a shape: at least HEAD_RADIUS and 10 % wider than its contour, so that the
    contour's normals stay within ~65 degrees of the camera on a frontal face whatever the identity."""
    return max(HEAD_RADIUS, 1.1 * float(np.abs(shape[CONTOUR, 0]).max()))


def surface_depth(xy: np.ndarray, radius: float) -> np.ndarray:
    """Depth ``[N]`` of the head surface below face-frame points ``[N, 2]``."""
    x = np.clip(xy[..., 0], -0.98 * radius, 0.98 * radius)
    return np.sqrt(radius ** 2 - x ** 2) - VERTICAL_FALLOFF * (xy[..., 1] - FALLOFF_CENTRE) ** 2


def surface_normals(xy: np.ndarray, radius: float) -> np.ndarray:
    """Unit outward normals ``[N, 3]`` of the head surface at face-frame points ``[N, 2]``."""
    x = np.clip(xy[..., 0], -0.98 * radius, 0.98 * radius)
    zc = np.sqrt(radius ** 2 - x ** 2)
    n = np.stack([x / zc, 2.0 * VERTICAL_FALLOFF * (xy[..., 1] - FALLOFF_CENTRE), np.ones_like(x)], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def lift_landmarks(shape: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """3-D landmarks ``[98, 3]`` and their unit normals ``[98, 3]``."""
    points = np.concatenate([shape, (surface_depth(shape, radius) + DEPTH_OFFSET)[:, None]], axis=1)
    normals = surface_normals(shape, radius)
    for idx, angle in NOSE_NORMAL_ANGLES.items():
        a = np.deg2rad(angle)
        normals[idx] = (np.sin(a), 0.0, np.cos(a))
    normals[51:55] = np.array([0.0, -0.1, 1.0]) / np.hypot(0.1, 1.0)
    return points, normals


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """``[3, 3]`` = roll (image plane) after pitch (about x) after yaw (about y); degrees."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass
class FaceGeometry:
    """A placed face. ``landmarks [98, 2]`` image pixels (pixel centres at integer coordinates),
    ``self_visible [98]`` (False = facing away from the camera), ``silhouette [N, 2]`` the skin outline
    in pixels, ``nose_polygon [M, 2]`` the nose's outline in pixels (it hides what lies behind it)."""

    params: FaceParams
    shape: np.ndarray
    points3d: np.ndarray
    landmarks: np.ndarray
    depth: np.ndarray
    self_visible: np.ndarray
    silhouette: np.ndarray
    nose_polygon: np.ndarray
    rotation: np.ndarray
    scale: float
    offset: np.ndarray
    radius: float

    def project(self, points3d: np.ndarray) -> np.ndarray:
        """Face-frame 3-D points ``[N, 3]`` -> image pixels ``[N, 2]``."""
        return (points3d @ self.rotation.T)[:, :2] * self.scale + self.offset

    def facing(self, normals: np.ndarray) -> np.ndarray:
        """z of the rotated normals ``[N]``: > 0 faces the camera."""
        return normals @ self.rotation[2]

    def on_surface(self, xy: np.ndarray, lift: float = 0.0) -> np.ndarray:
        """Face-frame 2-D points ``[N, 2]`` -> image pixels, placed ``lift`` above the head surface."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return self.project(np.concatenate([xy, (surface_depth(xy, self.radius) + lift)[:, None]], axis=1))


def _boundary(shape: np.ndarray, forehead: float) -> np.ndarray:
    """The face outline in the face frame ``[N, 2]``: the jaw contour (densified) then a forehead arc."""
    jaw = shape[CONTOUR]
    t = np.linspace(0.0, 1.0, 3, endpoint=False)
    dense = (jaw[:-1, None, :] * (1 - t)[None, :, None] + jaw[1:, None, :] * t[None, :, None]).reshape(-1, 2)
    dense = np.concatenate([dense, jaw[-1:]])
    y_top = shape[BROWS, 1].min() - forehead
    left, right = jaw[0], jaw[-1]
    angles = np.linspace(0.0, np.pi, 26)[1:-1]
    xc = 0.5 * (left[0] + right[0])
    hw = 0.5 * (right[0] - left[0])
    y_base = right[1] + (left[1] - right[1]) * angles / np.pi
    hh = 0.5 * (left[1] + right[1]) - y_top
    arc = np.stack([xc + hw * np.cos(angles), y_base - hh * np.sin(angles)], axis=1)
    return np.concatenate([dense, arc])


def _limb_points(boundary: np.ndarray, rotation: np.ndarray, radius: float) -> np.ndarray:
    """For boundary points ``[N, 2]``: the outermost camera-facing point of the head surface on the same
    face-frame row (between x = 0 and the boundary point), i.e. where the limb cuts that row."""
    u = np.linspace(0.0, 1.0, 41)
    rows = np.stack([boundary[:, None, 0] * u[None, :], np.broadcast_to(boundary[:, None, 1], (len(boundary), 41))],
                    axis=-1)
    facing = surface_normals(rows, radius) @ rotation[2]                      # [N, 41]
    visible = facing > 0
    last = np.where(visible.all(axis=1), 40, np.argmin(visible, axis=1) - 1).clip(0, 39)
    idx = np.arange(len(boundary))
    f0, f1 = facing[idx, last], facing[idx, last + 1]
    frac = np.where(f0 - f1 > 1e-12, f0 / np.maximum(f0 - f1, 1e-12), 0.0).clip(0.0, 1.0)
    ux = u[last] + frac * (u[1] - u[0])
    return np.stack([boundary[:, 0] * ux, boundary[:, 1]], axis=1)


def _nose_points(shape: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """3-D points outlining the nose ``[N, 3]``: its landmarks plus where the bridge meets the cheeks."""
    roots = []
    for idx, half_width in ((51, 0.08), (52, 0.085), (53, 0.09)):
        for side in (-1.0, 1.0):
            roots.append((shape[idx, 0] + side * half_width, shape[idx, 1]))
    roots = np.asarray(roots)
    roots3d = np.concatenate([roots, (surface_depth(roots, radius) + 0.02)[:, None]], axis=1)
    return np.concatenate([points[NOSE], roots3d])


def build_geometry(model: ShapeModel, params: FaceParams, size: int, rng: np.random.Generator) -> FaceGeometry:
    """Lift, rotate, project and place a face in a ``size`` x ``size`` image. The landmark box's longer
    side is size / 1.2 (the release's crop rule) times U(0.92, 1.06), its centre jittered by up to 4 % of
    the side, and every landmark is kept at least 2 px inside the image."""
    shape = face_shape_2d(model, params)
    radius = head_radius(shape)
    points3d, normals = lift_landmarks(shape, radius)
    rotation = rotation_matrix(params.yaw, params.pitch, params.roll)
    rotated = points3d @ rotation.T
    # Turning away hides the contour and the nose wings. Brows, eyes and mouth are drawn as flat features
    # and would still show where the drawing puts them, so they are never self-hidden (within the +-45
    # degree yaw range only a far brow tip ever crosses the limb); the nose can still cover them.
    self_visible = (normals @ rotation[2]) > 0.0
    self_visible[np.r_[BROWS, 60:96, PUPILS]] = True
    xy = rotated[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    scale = size / 1.2 * rng.uniform(0.92, 1.06) / float((hi - lo).max())
    centre = np.array([(size - 1) / 2.0, (size - 1) / 2.0]) + rng.uniform(-0.04, 0.04, 2) * size
    offset = centre - 0.5 * (lo + hi) * scale
    # Keep the landmarks inside [2, size - 3]: shift (never rescale) when the jitter pushed them out.
    lo_px, hi_px = lo * scale + offset, hi * scale + offset
    offset = offset + np.maximum(0.0, 2.0 - lo_px) - np.maximum(0.0, hi_px - (size - 3.0))
    geometry = FaceGeometry(params=params, shape=shape, points3d=points3d, landmarks=xy * scale + offset,
                            depth=rotated[:, 2] * scale, self_visible=self_visible,
                            silhouette=np.zeros((0, 2)), nose_polygon=np.zeros((0, 2)), rotation=rotation,
                            scale=float(scale), offset=offset, radius=radius)

    boundary = _boundary(shape, params.forehead)
    boundary_visible = geometry.facing(surface_normals(boundary, radius)) > 0.0
    outline = boundary.copy()
    outline[~boundary_visible] = _limb_points(boundary[~boundary_visible], rotation, radius)
    # The boundary holds the contour landmarks themselves (DEPTH_OFFSET is 0 there), so visible contour
    # landmarks are vertices of the silhouette and hidden ones fall inside it, behind the limb.
    geometry.silhouette = geometry.on_surface(outline)
    nose = geometry.project(_nose_points(shape, points3d, radius))
    geometry.nose_polygon = _convex_hull(nose)
    return geometry


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull ``[M, 2]`` of points ``[N, 2]`` (monotone chain; counter-clockwise on screen)."""
    pts = sorted(map(tuple, np.asarray(points, dtype=np.float64)))

    def cross(o, a, b) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1])
