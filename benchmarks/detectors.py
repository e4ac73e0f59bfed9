"""Face detectors on the real annotated faces beside the checkout (``$LGRN_SHARED_DATA`` or
``../shared/data``): the 14 WFLW test faces (full photos), the 6 300-W LFPW samples, and the 554 faces of
the 300-W common test set. For each detector: faces found, boxes that match no annotated face, time per
image; with ``--calibrate``, the box -> crop calibration fitted on 400 300-W TRAINING faces and its
residuals on the test faces.

    python benchmarks/detectors.py                 # Haar and RetinaFace, the README's table
    python benchmarks/detectors.py --calibrate     # refit the calibrations (values for lgrn/*.py)

A face is found when a detection's centre lies inside its landmark box and the detection's side is
0.5-2x the landmark box's larger side. Other boxes are "unmatched": false detections, or real faces that
the dataset does not annotate (WFLW photos often show several people and annotate only some).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lgrn.data.readers import read_300w, read_wflw_official  # noqa: E402
from lgrn.detect import HaarFaceDetector, RetinaFaceDetector, calibrate_detector, match_faces  # noqa: E402
from lgrn.images import read_image  # noqa: E402


def shared_root() -> Path:
    return Path(os.environ.get("LGRN_SHARED_DATA") or REPO.parent / "shared" / "data")


def sample_sets(root: Path) -> dict[str, list[tuple[str, Path, list[np.ndarray]]]]:
    """name -> [(image name, image path, [landmarks of each annotated face in it])]."""
    def group(samples) -> list[tuple[str, Path, list[np.ndarray]]]:
        images: dict[str, tuple[str, Path, list[np.ndarray]]] = {}
        for s in samples:
            key = str(s.image_path)
            images.setdefault(key, (s.name, Path(s.image_path), []))[2].append(np.asarray(s.landmarks))
        return list(images.values())

    wflw = read_wflw_official(root / "wflw" / "list_98pt_rect_attr_test.txt", root / "wflw" / "WFLW_images")
    return {"wflw_14": group(wflw), "300w_samples_6": group(read_300w(root / "300w", "train")),
            "300w_common_554": group(read_300w(root / "300w_recropped", "common"))}


def match(boxes: np.ndarray, faces: list[np.ndarray]) -> tuple[int, int]:
    """(annotated faces found, detections matching no annotated face)."""
    found = sum(m is not None for m in match_faces(boxes, faces))
    return found, len(boxes) - found


def run(detectors: dict, sets: dict) -> list[dict]:
    rows = []
    for set_name, images in sets.items():
        pixels = [read_image(path) for _, path, _ in images]
        for det_name, detector in detectors.items():
            detector.detect(pixels[0])        # warm-up
            found = unmatched = 0
            start = time.perf_counter()
            for image, (_, _, faces) in zip(pixels, images):
                f, u = match(detector.detect(image), faces)
                found, unmatched = found + f, unmatched + u
            seconds = time.perf_counter() - start
            total = sum(len(faces) for _, _, faces in images)
            rows.append({"set": set_name, "detector": det_name, "images": len(images), "faces": total,
                         "found": found, "unmatched_boxes": unmatched, "ms_per_image": 1000 * seconds / len(images),
                         "mean_image_side": float(np.mean([max(p.shape[:2]) for p in pixels]))})
            print(f"{set_name:16s} {det_name:11s} found {found:3d}/{total:3d}, unmatched boxes {unmatched:3d}, "
                  f"{1000 * seconds / len(images):6.1f} ms/image (mean longer side "
                  f"{rows[-1]['mean_image_side']:.0f} px)", flush=True)
    return rows


def calibrate(detectors: dict, root: Path, count: int = 400) -> dict:
    train = read_300w(root / "300w_recropped", "train")
    picks = [train[int(i)] for i in np.linspace(0, len(train) - 1, count).round()]
    test = read_300w(root / "300w_recropped", "common")
    out = {}
    for name, detector in detectors.items():
        faces = [(s.name, read_image(s.image_path), np.asarray(s.landmarks)) for s in picks]
        calibration, report, _ = calibrate_detector(detector, faces)
        held_out = [(s.name, read_image(s.image_path), np.asarray(s.landmarks)) for s in test]
        _, test_report, _ = calibrate_detector(detector, held_out, calibration=calibration)
        out[name] = {"scale": calibration.scale, "offset_x": calibration.offset_x, "offset_y": calibration.offset_y,
                     "fit": report.summary(), "test": test_report.summary()}
        print(f"{name}: BoxCalibration(scale={calibration.scale:.3f}, offset_x={calibration.offset_x:.3f}, "
              f"offset_y={calibration.offset_y:.3f})\n  fit on {count} 300-W training faces: {report.summary()}\n"
              f"  300-W common test faces: {test_report.summary()}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime / OpenCV threads")
    parser.add_argument("--calibrate", action="store_true", help="fit each detector's box calibration")
    parser.add_argument("--json", type=Path, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(args.threads)
    detectors = {"haar": HaarFaceDetector(), "retinaface": RetinaFaceDetector(threads=args.threads)}
    root = shared_root()
    result: dict = {"rows": run(detectors, sample_sets(root))}
    if args.calibrate:
        result["calibration"] = calibrate(detectors, root)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
