"""Temporal smoothing of landmark tracks with the One Euro filter (Casiez, Roussel & Vogel, CHI 2012) and
the jitter figure used to judge it.

The One Euro filter is an exponential low-pass filter whose cutoff rises with speed: at rest the
cutoff is ``min_cutoff`` (Hz) and noise is strongly damped; when the face moves the cutoff grows by
``beta`` x speed, so lag stays small. Here the speed is measured per landmark (norm of its 2-D velocity)
and in face sizes per second (velocity / ``scale``, with scale = the face crop side), so one set of
parameters suits small and large faces alike.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "jitter", "DEFAULT_MIN_CUTOFF", "DEFAULT_BETA", "DEFAULT_D_CUTOFF"]

# Tuned on synthetic tracks (30 fps, noise 1% of the face size, motion up to 1 face size per second):
# see docs/inference.md.
DEFAULT_MIN_CUTOFF = 1.0
DEFAULT_BETA = 3.0
DEFAULT_D_CUTOFF = 1.0


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    # smoothing factor of a first-order low-pass filter with this cutoff frequency (Hz) at step dt (s)
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter over arrays of points ``[..., 2]`` (e.g. landmarks ``[K, 2]``).

    ``__call__(points, t, scale=1.0)`` returns the filtered points for time ``t`` (seconds, strictly
    increasing); the first call returns its input. ``scale`` (e.g. the face crop side in pixels)
    converts speeds to face sizes per second before ``beta`` applies. ``reset()`` forgets the state.
    """

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"One Euro filter needs min_cutoff > 0, d_cutoff > 0, beta >= 0; got "
                             f"min_cutoff={min_cutoff}, d_cutoff={d_cutoff}, beta={beta}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self._previous: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def __call__(self, points: np.ndarray, t: float, scale: float = 1.0) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim < 1 or points.shape[-1] != 2:
            raise ValueError(f"points must have shape [..., 2], got {points.shape}")
        if self._previous is None or self._previous.shape != points.shape:
            self._previous, self._speed, self._time = points.copy(), np.zeros(points.shape[:-1]), float(t)
            return points.copy()
        dt = float(t) - self._time
        if dt <= 0:
            raise ValueError(f"One Euro filter: time must increase (got t={t} after t={self._time})")
        # speed of each point in face sizes per second, itself low-pass filtered at d_cutoff
        speed = np.linalg.norm(points - self._previous, axis=-1) / dt / max(float(scale), 1e-12)
        self._speed = self._speed + _alpha(self.d_cutoff, dt) * (speed - self._speed)
        alpha = _alpha(self.min_cutoff + self.beta * self._speed, dt)[..., None]
        self._previous = self._previous + alpha * (points - self._previous)
        self._time = float(t)
        return self._previous.copy()


def jitter(track: np.ndarray) -> float:
    """Mean frame-to-frame landmark motion of a track ``[T, K, 2]``: the mean over consecutive frames and
    landmarks of ``||x_t - x_{t-1}||`` (pixels). 0 for fewer than two frames."""
    track = np.asarray(track, dtype=np.float64)
    if track.ndim != 3 or track.shape[-1] != 2:
        raise ValueError(f"track must have shape [T, K, 2], got {track.shape}")
    if len(track) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(track, axis=0), axis=-1).mean())
