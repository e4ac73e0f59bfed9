"""lgrn.images, the one image-input module: file reads with and without EXIF orientation, OpenCV's 8-bit
decode of bytes (uploads) and files (training data), the header-only size, the decodability check, and
the network-input convention (z-score, crops) shared by training and inference."""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from lgrn.data.transforms import normalize_image as training_normalize_image
from lgrn.images import (IMAGE_SUFFIXES, ImageReadError, can_decode, crop_faces, decode_bgr8, header_pixels,
                         image_size, load_bgr, normalize_image, read_bgr8, read_image, to_bgr)

ORIENTATION = 0x0112   # the EXIF orientation tag


def _rotated_jpeg(path) -> np.ndarray:
    """A 40 x 20 (W x H) JPEG whose EXIF says "rotate 90 degrees clockwise to display" (orientation 6)."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[ORIENTATION] = 6
    image.save(path, exif=exif.tobytes(), quality=95)
    return pixels


def test_orientation_is_applied_by_inference_reads_and_can_be_ignored(tmp_path):
    path = tmp_path / "rotated.jpg"
    _rotated_jpeg(path)
    assert read_image(path).shape == (40, 20, 3)                    # as viewers show it
    assert read_bgr8(path).shape == (40, 20, 3)
    assert read_bgr8(path, orientation=False).shape == (20, 40, 3)  # the stored pixel grid (lgrn prepare)
    data = path.read_bytes()
    assert decode_bgr8(data).shape == (40, 20, 3)
    assert decode_bgr8(data, orientation=False).shape == (20, 40, 3)
    assert image_size(path) == (40, 20)                            # header only: the stored grid


def test_decode_bgr8_matches_opencv_and_rejects_what_it_cannot_read(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    np.testing.assert_array_equal(decode_bgr8(encoded.tobytes()), image)
    np.testing.assert_array_equal(decode_bgr8(encoded), cv2.imdecode(encoded, cv2.IMREAD_COLOR))
    assert decode_bgr8(b"") is None and decode_bgr8(b"not an image") is None
    assert read_bgr8(tmp_path / "missing.png") is None
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    (tmp_path / "good.png").write_bytes(encoded.tobytes())
    assert can_decode(tmp_path / "good.png")
    assert not can_decode(tmp_path / "bad.jpg") and not can_decode(tmp_path / "missing.png")
    assert image_size(tmp_path / "bad.jpg") is None and image_size(tmp_path / "good.png") == (16, 12)


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)
    big = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(big)
    assert header_pixels(big) == (60_000, "300 x 200 pixels")
    with pytest.raises(ImageReadError, match="over the limit of 1000 pixels"):
        read_image(big, max_pixels=1000)
    assert read_image(big, max_pixels=None).shape == (200, 300, 3)
    buffer = io.BytesIO()
    Image.new("RGB", (5, 4)).save(buffer, format="PNG")
    assert header_pixels(io.BytesIO(buffer.getvalue()))[0] == 20
    assert ".png" in IMAGE_SUFFIXES and ".jpg" in IMAGE_SUFFIXES


def test_colour_conversion():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[..., 0] = 200                                     # red in RGB order
    assert to_bgr(rgb)[0, 0].tolist() == [0, 0, 200]
    assert to_bgr(rgb, "bgr")[0, 0].tolist() == [200, 0, 0]
    assert to_bgr(np.full((2, 2), 65535, dtype=np.uint16))[0, 0].tolist() == [255, 255, 255]
    assert load_bgr(Image.fromarray(rgb))[0, 0].tolist() == [0, 0, 200]
    with pytest.raises(TypeError):
        to_bgr(np.zeros((2, 2), dtype=np.float32))


def test_training_and_inference_share_the_network_input():
    patch = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert training_normalize_image is normalize_image      # one definition, used by training and serving
    out = normalize_image(patch)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out.reshape(3, -1).mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out.reshape(3, -1).std(axis=1), 1, atol=1e-4)
    inputs, matrices = crop_faces(patch, np.array([[0.0, 0.0, 32.0, 32.0]]), 16, is_color=False)
    assert inputs.shape == (1, 1, 16, 16) and matrices.shape == (1, 2, 3)
