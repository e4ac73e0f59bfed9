"""Fuzzing the annotation readers: real lines (WFLW official, processed lists, 300-W .pts, generic CSV and
JSON lines, crop sidecars, scheme files) mutated at random - truncated, fields added or dropped,
non-numeric, non-finite, huge, duplicated, non-UTF-8 bytes - must either read or raise lgrn's own error
(ValueError / FileNotFoundError naming the file). Any other exception (IndexError, KeyError, TypeError,
UnicodeDecodeError, MemoryError...) fails the test."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lgrn.data.readers import read_crops, read_generic, read_pts, read_release_list, read_wflw_official
from lgrn.landmarks import load_scheme_file

CASES_PER_READER = 150
OWN_ERRORS = (ValueError, FileNotFoundError)


def mutate(text: str, rng: np.random.Generator) -> bytes:
    lines = text.splitlines()
    kind = rng.integers(0, 10)
    i = int(rng.integers(0, len(lines)))
    tokens = lines[i].split(" ")
    j = int(rng.integers(0, len(tokens)))
    if kind == 0:                                    # truncated file
        return text[: int(rng.integers(0, len(text)))].encode()
    if kind == 1:                                    # a field dropped
        del tokens[j]
    elif kind == 2:                                  # a field added
        tokens.insert(j, str(rng.normal() * 100))
    elif kind == 3:                                  # non-numeric
        tokens[j] = ["abc", "4_40.5", "1e", "--3", "", "0x10", "[1,", "{}"][int(rng.integers(0, 8))]
    elif kind == 4:                                  # non-finite
        tokens[j] = ["nan", "inf", "-inf", "NaN", "1e999"][int(rng.integers(0, 5))]
    elif kind == 5:                                  # huge
        tokens[j] = ["1e30", "-50000", "99999999999999999999", "100000000000", "-1"][int(rng.integers(0, 5))]
    elif kind == 6:                                  # a line duplicated
        lines.insert(i, lines[i])
    elif kind == 7:                                  # non-UTF-8 bytes
        raw = text.encode()
        k = int(rng.integers(0, len(raw)))
        return raw[:k] + bytes([0xFF, 0xC3, 0x28])[: int(rng.integers(1, 4))] + raw[k:]
    elif kind == 8:                                  # a line emptied or a stray character
        lines[i] = "" if rng.uniform() < 0.5 else lines[i] + " }"
    else:                                            # every coordinate scaled by a million
        tokens = [str(float(t) * 1e6) if _is_number(t) else t for t in tokens]
    lines[i] = " ".join(tokens) if kind not in (6, 8) else lines[i]
    return ("\n".join(lines) + "\n").encode()


def _is_number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def fuzz(path: Path, text: str, read, seed: int) -> int:
    rng = np.random.default_rng(seed)
    errors = 0
    for _ in range(CASES_PER_READER):
        path.write_bytes(mutate(text, rng))
        try:
            read(path)
        except OWN_ERRORS as exc:
            errors += 1
            assert path.name in str(exc) or str(path) in str(exc), f"message without the file: {exc}"
        except Exception as exc:                  # noqa: BLE001 - the point of the test
            pytest.fail(f"{type(exc).__name__} (not lgrn's own error) on {path.read_bytes()[:300]!r}: {exc}")
    return errors


def test_fuzz_wflw_official(shared_data, tmp_path):
    text = "\n".join((shared_data / "wflw" / "list_98pt_rect_attr_test.txt").read_text().splitlines()[:3]) + "\n"
    images = shared_data / "wflw" / "WFLW_images"
    assert fuzz(tmp_path / "list.txt", text, lambda p: read_wflw_official(p, images), 1) > 0


def test_fuzz_release_list(tmp_path):
    root = tmp_path / "Image"
    root.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(root / name), np.full((64, 64, 3), 100, np.uint8))
    text = "10 12 30 31 50 20 a.jpg\n11 13 29 30 40 22 b.jpg\n"
    assert fuzz(tmp_path / "list.txt", text, lambda p: read_release_list(root, p, 3), 2) > 0


def test_fuzz_pts(shared_data, tmp_path):
    text = (shared_data / "300w" / "lfpw" / "trainset" / "image_0001.pts").read_text()
    assert fuzz(tmp_path / "face.pts", text, lambda p: read_pts(p, num_landmarks=68), 3) > 0


def test_fuzz_generic_csv_and_jsonl(tmp_path):
    csv_text = "image,x0,y0,x1,y1\na.jpg,1,2,3,4\nb.jpg,5,6,7,8\n"
    assert fuzz(tmp_path / "faces.csv", csv_text, lambda p: read_generic(p, check_images=False), 4) > 0
    jsonl = "\n".join(json.dumps({"image": n, "landmarks": [[1, 2], [3, 4]]}) for n in ("a.jpg", "b.jpg")) + "\n"
    assert fuzz(tmp_path / "faces.jsonl", jsonl, lambda p: read_generic(p, check_images=False), 5) > 0


def test_fuzz_crop_sidecar(tmp_path):
    text = json.dumps({"name": "a.jpg", "original": "x/a.jpg", "size": 128,
                       "matrix": [[0.5, 0.0, -4.0], [0.0, 0.5, -3.0]]}) + "\n"
    assert fuzz(tmp_path / "list_crops.jsonl", text, read_crops, 6) > 0


def test_fuzz_scheme_file(tmp_path):
    text = ("name: tri\nnum_landmarks: 3\nflip_pairs: [[0, 1]]\ninter_ocular: [0, 1]\n"
            "graph: [[0, 1], [1, 2]]\n")
    assert fuzz(tmp_path / "tri.yaml", text, load_scheme_file, 7) > 0
