"""Landmarks for an image, a folder of images (recursive, with a progress bar) or a video: the library side
of ``lgrn predict`` (its command line is ``lgrn.cli.predict``), :func:`predict_source` with
:class:`PredictOptions`. Writes ``landmarks.json`` (``{"scheme", "num_landmarks", "faces": [one record per
face]}``), ``landmarks.csv`` (and, with other formats, COCO keypoints JSON, iBUG ``.pts`` files and an
OpenFace-style CSV: ``output_formats``), ``summary.json`` and annotated images (``annotated/``) or an
annotated video (``<stem>_annotated.mp4``). Faces come from the detector or from a boxes file. In a video,
faces are linked into tracks from frame to frame (box overlap) and each track is smoothed with a One Euro
filter (``smoothing``); the jitter (mean frame-to-frame landmark motion) is reported with and without
smoothing. Unreadable files are skipped and listed in folder mode; a single unreadable image is an error.
See docs/inference.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from .drawing import GREEN, RED, draw_box, draw_points
from .detect import FaceDetector, HaarFaceDetector, as_boxes, box_iou, default_detector
from .images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, ImageReadError, read_image
from .inference import FaceAligner, FaceLandmarks
from .output_formats import DEFAULT_FORMATS, write_outputs
from .pretrained import DEFAULT_MODEL, pretrained_path
from .smoothing import DEFAULT_BETA, DEFAULT_D_CUTOFF, DEFAULT_MIN_CUTOFF, OneEuroFilter, jitter

__all__ = ["PredictOptions", "PredictResult", "predict_source", "build_detector", "read_boxes_file",
           "draw_landmarks", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
CHUNK = 16   # images decoded and sent through the network together


def read_boxes_file(path: str | Path) -> dict[str, np.ndarray]:
    """Face boxes per image name from ``path``: JSON ``{name: [[x1, y1, x2, y2], ...]}`` (a single box may
    be a flat list), lgrn's own ``landmarks.json`` (its ``faces`` records), or CSV / whitespace text with
    rows ``name,x1,y1,x2,y2`` (several rows per name allowed, optional header). Names are matched against
    the image's path relative to the input folder, its file name, or, for a video, the frame index;
    ``"*"`` applies to every image / frame without its own entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"boxes file not found: {path}")
    text = path.read_text()
    boxes: dict[str, list] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        if isinstance(data, dict) and isinstance(data.get("faces"), list):
            for i, record in enumerate(data["faces"]):
                key = str(record["frame"]) if "frame" in record else record.get("image")
                if key is None or "box" not in record:
                    raise ValueError(f"{path}: faces[{i}] needs 'image' (or 'frame') and 'box'")
                boxes.setdefault(key, []).append(record["box"])
        elif isinstance(data, dict):
            for key, value in data.items():
                try:
                    array = np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError):
                    raise ValueError(f"{path}: boxes of {key!r} must be numbers, got {value!r}") from None
                if array.size % 4:
                    raise ValueError(f"{path}: boxes of {key!r} must be [x1, y1, x2, y2] lists, got {value!r}")
                boxes[str(key)] = list(array.reshape(-1, 4))
        else:
            raise ValueError(f"{path}: expected a JSON object {{image name: boxes}}")
    else:
        for line_no, line in enumerate(text.splitlines(), start=1):
            fields = [f.strip() for f in (line.split(",") if "," in line else line.split())]
            if not fields or not fields[0] or fields[0].startswith("#"):
                continue
            if len(fields) != 5:
                raise ValueError(f"{path}:{line_no}: expected 5 fields (name, x1, y1, x2, y2), got {len(fields)}")
            try:
                values = [float(v) for v in fields[1:]]
            except ValueError:
                if line_no == 1:
                    continue   # header row
                raise ValueError(f"{path}:{line_no}: box values must be numbers, got {fields[1:]}") from None
            boxes.setdefault(fields[0], []).append(values)
    return {key: as_boxes(value, where=f"{path}: boxes of {key!r}") for key, value in boxes.items()}


def _lookup(boxes: dict[str, np.ndarray] | None, *keys: str) -> np.ndarray | None:
    if boxes is None:
        return None
    for key in keys + ("*",):
        if key in boxes:
            return boxes[key]
    return np.zeros((0, 4))   # boxes were given, just not for this image: no face


def draw_landmarks(image: np.ndarray, result: FaceLandmarks, landmarks: np.ndarray | None = None) -> np.ndarray:
    """A copy of BGR ``image`` with each face's box (green) and landmarks (red dots) drawn."""
    canvas = image.copy()
    landmarks = result.landmarks if landmarks is None else landmarks
    for box, points in zip(result.boxes, landmarks):
        side = float(box[2] - box[0])
        draw_box(canvas, box, GREEN, max(1, round(side / 150)))
        draw_points(canvas, points, max(1, round(side / 100)), RED)
    return canvas


def _record(name: str, index: int, result: FaceLandmarks, landmarks: np.ndarray | None = None,
            **extra: Any) -> dict[str, Any]:
    points = result.landmarks[index] if landmarks is None else landmarks
    record = {"image": name, "face": index, **extra, "image_size": list(result.image_size),
              "box": [round(float(v), 3) for v in result.boxes[index]],
              "crop_box": [round(float(v), 3) for v in result.crop_boxes[index]],
              "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in points]}
    if landmarks is not None:
        record["raw_landmarks"] = [[round(float(x), 3), round(float(y), 3)] for x, y in result.landmarks[index]]
    return record


def _annotated_path(out: Path, name: str) -> Path:
    target = out / "annotated" / name
    # formats cv2.imwrite always has; others (TIFF, WebP, 16-bit PNG sources...) get a .png twin
    writable = target.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp")
    return target if writable else target.with_name(target.name + ".png")


def _predict_images(aligner: FaceAligner, files: list[Path], names: list[str], out: Path, boxes: Any,
                    annotate: bool, single: bool, progress: bool,
                    max_pixels: int | None = DEFAULT_MAX_PIXELS) -> tuple[list[dict], dict]:
    records: list[dict] = []
    unreadable: list[dict] = []
    no_face: list[str] = []
    bar = tqdm(total=len(files), unit="image", disable=not progress or single, desc="lgrn predict")
    interrupted, done = False, 0
    try:
        for start in range(0, len(files), CHUNK):
            chunk = list(zip(files[start:start + CHUNK], names[start:start + CHUNK]))
            images, kept = [], []
            for path, name in chunk:
                try:
                    images.append(read_image(path, max_pixels))
                    kept.append(name)
                except ImageReadError as exc:
                    if single:
                        raise
                    unreadable.append({"file": str(path), "reason": str(exc)})
            given = [_lookup(boxes, name, Path(name).name) for name in kept]
            results = aligner.predict(images, boxes=given, color="bgr") if images else []
            for image, name, result in zip(images, kept, results):
                if annotate:
                    target = _annotated_path(out, name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(target), draw_landmarks(image, result))
                records.extend(_record(name, i, result) for i in range(len(result)))
                if not len(result):
                    no_face.append(name)
            done += len(chunk)
            bar.update(len(chunk))
    except KeyboardInterrupt:      # Ctrl-C: the images finished so far are kept (main writes them)
        interrupted = True
        done_names = {r["image"] for r in records} | set(no_face)
        done = len(done_names) + len(unreadable)
    bar.close()
    summary = {"mode": "image" if single else "folder", "images": done - len(unreadable),
               "faces": len(records), "images_without_faces": no_face, "unreadable": unreadable}
    if interrupted:
        summary["interrupted"] = {"images_done": done, "images_listed": len(files)}
    return records, summary


class _Track:
    def __init__(self, track_id: int, smoother: OneEuroFilter | None) -> None:
        self.id, self.smoother = track_id, smoother
        self.last_frame, self.last_box = -1, None
        self.raw: list[tuple[int, np.ndarray, float]] = []        # (frame, landmarks, crop side)
        self.smoothed: list[np.ndarray] = []


def _video_jitter(tracks: list[_Track]) -> dict[str, float]:
    """Mean frame-to-frame landmark motion over consecutive frames of every track, raw and smoothed."""
    motions: dict[str, list[float]] = {"raw": [], "smoothed": [], "raw_rel": [], "smoothed_rel": []}
    for track in tracks:
        for (f0, a, side), (f1, b, _), s0, s1 in zip(track.raw, track.raw[1:], track.smoothed, track.smoothed[1:]):
            if f1 - f0 != 1:
                continue
            for key, p, q in (("raw", a, b), ("smoothed", s0, s1)):
                value = jitter(np.stack([p, q]))
                motions[key].append(value)
                motions[key + "_rel"].append(value / side)
    mean = {k: (float(np.mean(v)) if v else 0.0) for k, v in motions.items()}
    return {"frame_pairs": len(motions["raw"]), "jitter_raw_px": mean["raw"], "jitter_smoothed_px": mean["smoothed"],
            "jitter_raw_pct_face": 100 * mean["raw_rel"], "jitter_smoothed_pct_face": 100 * mean["smoothed_rel"]}


def _predict_video(aligner: FaceAligner, path: Path, out: Path, boxes: Any, annotate: bool, progress: bool,
                   smooth: dict | None, max_frames: int | None) -> tuple[list[dict], dict]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ImageReadError(f"cannot open video {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if 0 < fps < 1000 else 30.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer, tracks, records, frame_index, interrupted = None, [], [], 0, False
    bar = tqdm(total=min(total, max_frames) if total and max_frames else total, unit="frame",
               disable=not progress, desc=f"lgrn predict {path.name}")
    done = False
    try:
        while not done:
            frames = []
            while len(frames) < CHUNK:
                ok, frame = capture.read()
                if not ok or (max_frames is not None and frame_index + len(frames) >= max_frames):
                    done = True
                    break
                frames.append(frame)
            if not frames:
                break
            given = [_lookup(boxes, str(frame_index + i)) for i in range(len(frames))]
            results = aligner.predict(frames, boxes=given, color="bgr")
            for frame, result in zip(frames, results):
                smoothed = _track_faces(tracks, result, frame_index, fps, smooth)
                for i, (track, points) in enumerate(smoothed):
                    records.append(_record(path.name, i, result, points, frame=frame_index,
                                           time=round(frame_index / fps, 4), track=track.id))
                if annotate:
                    if writer is None:
                        writer = _open_writer(out / f"{path.stem}_annotated.mp4", fps, frame.shape[1], frame.shape[0])
                    shown = np.array([p for _, p in smoothed]) if smoothed else result.landmarks
                    writer.write(draw_landmarks(frame, result, shown))
                frame_index += 1
            bar.update(len(frames))
    except KeyboardInterrupt:      # Ctrl-C: the frames finished so far are kept (main writes them)
        interrupted = True
    bar.close()
    capture.release()
    if writer is not None:
        writer.release()
    summary = {"mode": "video", "frames": frame_index, "fps": fps, "faces": len(records), "tracks": len(tracks),
               "smoothing": smooth, **_video_jitter(tracks)}
    if interrupted:
        summary["interrupted"] = {"frames_done": frame_index}
    return records, summary


def _track_faces(tracks: list[_Track], result: FaceLandmarks, frame_index: int, fps: float,
                 smooth: dict | None) -> list[tuple[_Track, np.ndarray]]:
    """Link this frame's faces to the tracks of the previous frames (greedy, crop-box IoU >= 0.3, gap of at
    most 5 frames) or start new ones, and smooth each face with its track's filter."""
    live = [t for t in tracks if frame_index - t.last_frame <= 5 and t.last_box is not None]
    iou = box_iou(result.crop_boxes, np.array([t.last_box for t in live])) if live and len(result) else None
    assigned: list[_Track | None] = [None] * len(result)
    taken: set[int] = set()
    if iou is not None:
        for flat in np.argsort(-iou, axis=None):
            face, track = np.unravel_index(flat, iou.shape)
            if iou[face, track] < 0.3:
                break
            if assigned[face] is None and track not in taken:
                assigned[face], _ = live[track], taken.add(track)
    out = []
    for face in range(len(result)):
        track = assigned[face]
        if track is None:
            track = _Track(len(tracks), OneEuroFilter(**smooth) if smooth else None)
            tracks.append(track)
        side = float(result.crop_boxes[face, 2] - result.crop_boxes[face, 0])
        raw = result.landmarks[face].astype(np.float64)
        points = track.smoother(raw, frame_index / fps, side) if track.smoother else raw
        track.raw.append((frame_index, raw, side))
        track.smoothed.append(points)
        track.last_frame, track.last_box = frame_index, result.crop_boxes[face]
        out.append((track, points.astype(np.float32)))
    return out


def _open_writer(path: Path, fps: float, width: int, height: int) -> Any:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():   # an OpenCV build without an MPEG-4 encoder: Motion-JPEG AVI always works
        writer = cv2.VideoWriter(str(path.with_suffix(".avi")), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"cannot open a video writer for {path}")
    return writer


@dataclass
class PredictOptions:
    """The options of ``lgrn predict`` (docs/inference.md). ``checkpoint``: an lgrn checkpoint or exported
    ``.onnx`` file (None: the shipped default model); ``boxes``: a boxes file (:func:`read_boxes_file`) used
    instead of the detector; ``backend``/``device``/``threads``/``batch_size``/``refine``/``flip``: as in
    :meth:`FaceAligner.from_checkpoint`; ``detector``: "auto", "retinaface" or "haar", ``detector_angles``
    the in-plane angles the Haar cascade scans, ``min_face`` the smallest face side (None: the detector's
    own); ``formats``: output formats (``lgrn.output_formats.FORMATS``); ``annotate``: write annotated
    images / video; ``smooth`` and the One Euro parameters: video smoothing; ``max_frames``: stop a video
    early; ``max_pixels``: refuse larger images (None: no limit); ``progress``: show a progress bar."""

    checkpoint: str | Path | None = None
    boxes: str | Path | None = None
    backend: str | None = None
    device: str = "cpu"
    threads: int | None = None
    batch_size: int = 32
    refine: int = 0
    flip: bool = False
    detector: str = "auto"
    detector_angles: tuple[float, ...] = (0.0,)
    min_face: int | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    annotate: bool = True
    smooth: bool = True
    min_cutoff: float = DEFAULT_MIN_CUTOFF
    beta: float = DEFAULT_BETA
    d_cutoff: float = DEFAULT_D_CUTOFF
    max_frames: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    progress: bool = True


@dataclass
class PredictResult:
    """What :func:`predict_source` did: the face ``records``, the ``summary`` (also in ``summary.json``),
    the ``aligner`` used and the files ``written``."""

    records: list[dict]
    summary: dict
    aligner: FaceAligner
    written: list[Path]


def build_detector(name: str = "auto", threads: int | None = None, min_size: int | None = None,
                   angles: tuple[float, ...] = (0.0,)) -> FaceDetector:
    """:func:`lgrn.detect.default_detector`, with the Haar cascade scanning ``angles`` when it is the one."""
    detector = default_detector(name, threads=threads, min_size=min_size)
    if isinstance(detector, HaarFaceDetector) and angles != (0.0,):
        detector = HaarFaceDetector(angles=angles, min_size=detector.min_size)
    return detector


def predict_source(source: str | Path, out: str | Path, options: PredictOptions | None = None) -> PredictResult:
    """Landmarks for an image, a folder of images (recursive) or a video (by suffix, ``VIDEO_SUFFIXES``),
    written into ``out``: ``summary.json``, the ``options.formats`` and annotated images / video. A single
    unreadable image raises :class:`lgrn.images.ImageReadError`; in a folder, unreadable files are listed
    in the summary. Ctrl-C keeps what was finished (``summary["interrupted"]``)."""
    options = options or PredictOptions()
    source, out = Path(source), Path(out)
    boxes = read_boxes_file(options.boxes) if options.boxes else None
    checkpoint = options.checkpoint if options.checkpoint else pretrained_path()
    detector = build_detector(options.detector, options.threads, options.min_face, tuple(options.detector_angles))
    aligner = FaceAligner.from_checkpoint(checkpoint, device=options.device, backend=options.backend,
                                          threads=options.threads, batch_size=options.batch_size,
                                          refine=options.refine, flip=options.flip, detector=detector)
    out.mkdir(parents=True, exist_ok=True)
    progress, annotate = options.progress, options.annotate
    if source.is_dir():
        # every entry with an image suffix that is not a folder: broken symlinks, symlink loops and FIFOs are
        # reported as unreadable (read_image says why) instead of vanishing
        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir())
        names = [p.relative_to(source).as_posix() for p in files]
        records, summary = _predict_images(aligner, files, names, out, boxes, annotate, False, progress,
                                           options.max_pixels)
    elif source.suffix.lower() in VIDEO_SUFFIXES:
        smooth = (None if not options.smooth else
                  {"min_cutoff": options.min_cutoff, "beta": options.beta, "d_cutoff": options.d_cutoff})
        records, summary = _predict_video(aligner, source, out, boxes, annotate, progress, smooth, options.max_frames)
    else:
        records, summary = _predict_images(aligner, [source], [source.name], out, boxes, annotate, True, progress,
                                           options.max_pixels)
    summary["checkpoint"] = str(options.checkpoint) if options.checkpoint else f"pretrained:{DEFAULT_MODEL}"
    written = write_outputs(out, records, aligner.scheme, summary, options.formats)
    return PredictResult(records, summary, aligner, written)
