"""Landmarks over HTTP (FastAPI on uvicorn, the optional ``serve`` extra): :func:`create_app` and
:func:`run_server`, the library side of ``lgrn serve`` (its command line is ``lgrn.cli.serve``; see
docs/inference.md).

- ``POST /v1/landmarks``: a multipart upload with the image in the field ``image`` -> JSON ``{"image":
  {"width", "height"}, "scheme", "num_landmarks", "faces": [{"box", "crop_box", "landmarks"}], "model",
  "milliseconds"}`` (boxes x1 y1 x2 y2 and landmarks (x, y) in the image's pixels). Query parameter
  ``max_faces`` (1-100) keeps the largest faces.
- ``GET /healthz``: model, scheme, detector; ``GET /``: a page where a person drops a photo and sees its
  landmarks drawn.

The model and the detector are loaded once, at start. Uploads are read asynchronously and the network
runs in a worker thread, so a slow client never holds up the others. Errors are JSON ``{"detail": ...}``
with a 4xx status: 413 for an upload over ``max_upload_bytes`` or an image over ``max_pixels``, 415 for
a file that is not a decodable image, 422 for a missing field or a bad parameter.
"""
# No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at run time, and
# its types are imported inside create_app (the serve extra is optional).
import io
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .detect import default_detector
from .images import DEFAULT_MAX_PIXELS, decode_bgr8, header_pixels
from .inference import FaceAligner, FaceLandmarks
from .pretrained import DEFAULT_MODEL, pretrained_path

__all__ = ["create_app", "run_server", "DEFAULT_MAX_UPLOAD_MB", "DEFAULT_MAX_PIXELS"]

DEFAULT_MAX_UPLOAD_MB = 10.0
CHUNK = 1 << 16


def _page() -> str:
    return resources.files("lgrn").joinpath("web/index.html").read_text(encoding="utf-8")


def create_app(aligner: "FaceAligner", model_name: str, max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2 ** 20),
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """The FastAPI application around a ready ``aligner`` (its detector already built)."""
    # fastapi and starlette come with the optional serve extra: imported only when an app is made
    from fastapi import FastAPI, HTTPException, Query, Request, UploadFile
    from fastapi.responses import HTMLResponse
    from starlette.concurrency import run_in_threadpool

    app = FastAPI(title="lgrn", description="Facial landmarks (L-GRN) over HTTP", version="1")
    detector_name = type(aligner.detector).__name__

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return _page()

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": model_name, "scheme": aligner.scheme.name,
                "num_landmarks": aligner.scheme.num_landmarks, "detector": detector_name,
                "backend": aligner.backend, "max_upload_bytes": max_upload_bytes}

    @app.post("/v1/landmarks")
    async def landmarks(request: Request, image: UploadFile,
                        max_faces: int | None = Query(None, ge=1, le=100)) -> dict[str, Any]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes + CHUNK:
            raise HTTPException(413, f"upload of {int(declared)} bytes is over the limit of {max_upload_bytes} bytes")
        data = bytearray()
        while chunk := await image.read(CHUNK):
            data += chunk
            if len(data) > max_upload_bytes:
                raise HTTPException(413, f"upload {image.filename!r} is over the limit of {max_upload_bytes} bytes")
        size = header_pixels(io.BytesIO(bytes(data)))
        if size is None:
            raise HTTPException(415, f"upload {image.filename!r} is not an image that can be decoded "
                                "(JPEG, PNG, BMP, TIFF, WebP)")
        if size[0] > max_pixels:
            raise HTTPException(413, f"image {image.filename!r} is {size[1]}, over the limit of {max_pixels} pixels")
        start = time.perf_counter()
        result = await run_in_threadpool(_predict, aligner, bytes(data))
        if result is None:
            raise HTTPException(415, f"upload {image.filename!r} could not be decoded as an image")
        order = np.argsort(-(result.boxes[:, 2] - result.boxes[:, 0]), kind="stable")
        if max_faces is not None:
            order = order[:max_faces]
        faces = [{"box": [round(float(v), 2) for v in result.boxes[i]],
                  "crop_box": [round(float(v), 2) for v in result.crop_boxes[i]],
                  "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in result.landmarks[i]]}
                 for i in order]
        return {"image": {"width": result.image_size[1], "height": result.image_size[0]},
                "scheme": aligner.scheme.name, "num_landmarks": aligner.scheme.num_landmarks, "faces": faces,
                "model": model_name, "milliseconds": round(1000 * (time.perf_counter() - start), 1)}

    return app


def _predict(aligner: FaceAligner, data: bytes) -> FaceLandmarks | None:
    image = decode_bgr8(data)      # OpenCV's 8-bit BGR decode, EXIF orientation applied
    if image is None:
        return None
    return aligner.predict(image, color="bgr")


def run_server(checkpoint: str | Path | None = None, host: str = "127.0.0.1", port: int = 8000,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, device: str = "cpu", threads: int | None = None,
               detector: str = "auto") -> None:
    """Load the model (default: the shipped one) and the detector once, then serve until interrupted."""
    import uvicorn   # the optional serve extra

    path = Path(checkpoint) if checkpoint else pretrained_path()
    aligner = FaceAligner.from_checkpoint(path, device=device, threads=threads,
                                          detector=default_detector(detector, threads=threads))
    name = str(checkpoint) if checkpoint else DEFAULT_MODEL
    app = create_app(aligner, name, max_upload_bytes=int(max_upload_mb * 2 ** 20))
    uvicorn.run(app, host=host, port=port, log_level="info")
