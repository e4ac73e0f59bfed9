"""`lgrn serve` over real HTTP: the server is started by the test (`lgrn serve` in a subprocess, the shipped
model) on a loopback port; the API answers real faces, refuses bad input with a clear 4xx, keeps serving
while a slow client holds a connection; the web page, driven in headless Chromium, draws the landmarks of
a dropped photo (checked on its screenshot)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import cv2
import numpy as np
import pytest

from lgrn.data.readers import read_pts
from lgrn.landmarks import get_scheme
from lgrn.metrics import nme

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'lgrn[serve]'")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "lgrn.cli", "serve", "--port", str(port), "--max-upload-mb", "1",
                                "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:
                health = json.loads(reply.read())
            break
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                raise RuntimeError(f"lgrn serve did not start: {process.stdout.read().decode()[-2000:]}")
            time.sleep(0.5)
    yield url, health
    process.terminate()
    process.wait(timeout=30)


def post(url: str, data: bytes | None, filename: str = "face.jpg", field: str = "image", query: str = ""):
    boundary = uuid.uuid4().hex
    body = b""
    if data is not None:
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    else:
        body = f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/v1/landmarks" + query, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture(scope="module")
def face(shared_data):
    image = shared_data / "300w_recropped" / "helen" / "testset" / "296814969_3.jpg"
    return image.read_bytes(), read_pts(image.with_suffix(".pts"))


def test_health_and_landmarks_of_a_real_face(server, face):
    url, health = server
    assert health["status"] == "ok" and health["scheme"] == "300w68" and health["detector"] == "RetinaFaceDetector"
    data, gt = face
    status, answer = post(url, data)
    assert status == 200 and answer["num_landmarks"] == 68 and len(answer["faces"]) >= 1
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert (answer["image"]["height"], answer["image"]["width"]) == image.shape[:2]
    errors = [nme(np.array(f["landmarks"])[None], gt[None], get_scheme("300w68"))[0] for f in answer["faces"]]
    assert min(errors) < 0.1
    status, answer = post(url, data, query="?max_faces=1")
    assert status == 200 and len(answer["faces"]) == 1


def test_bad_input_gets_a_clear_4xx(server):
    url, _ = server
    status, answer = post(url, b"hello, this is text", filename="notes.txt")
    assert status == 415 and "'notes.txt' is not an image" in answer["detail"]
    big = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (800, 800, 3), dtype=np.uint8))[1].tobytes()
    assert len(big) > 2 ** 20
    status, answer = post(url, big, filename="big.png")
    assert status == 413 and "over the limit of 1048576 bytes" in answer["detail"]
    # 20,000 x 20,000 pixels in a few hundred kilobytes: refused from its header, never decoded
    huge = cv2.imencode(".png", np.zeros((20000, 20000), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()
    assert len(huge) < 2 ** 20
    status, answer = post(url, huge, filename="huge.png")
    assert status == 413 and answer["detail"] == "image 'huge.png' is 400000000 pixels, over the limit of 40000000 pixels"
    status, answer = post(url, b"\xff\xd8", query="?max_faces=0")
    assert status == 422 and "max_faces" in json.dumps(answer["detail"])
    status, answer = post(url, None)
    assert status == 422 and "image" in json.dumps(answer["detail"])


def test_a_slow_client_does_not_block_others(server, face):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    slow = socket.create_connection(("127.0.0.1", port))
    try:
        boundary = "slowslow"
        slow.sendall((f"POST /v1/landmarks HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary={boundary}"
                      f"\r\nContent-Length: 500000\r\n\r\n--{boundary}\r\nContent-Disposition: form-data; "
                      f"name=\"image\"; filename=\"slow.jpg\"\r\n\r\n").encode() + face[0][:1000])
        start = time.perf_counter()
        status, answer = post(url, face[0])
        assert status == 200 and answer["faces"]
        assert time.perf_counter() - start < 30
    finally:
        slow.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium; "
                    ".ci/run installs it)")
def test_web_page_draws_the_landmarks_of_a_dropped_photo(server, shared_data, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    url, _ = server
    photo = shared_data / "300w_recropped" / "lfpw" / "testset" / "image_0001.jpg"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page()
            page.goto(url + "/")
            before = page.locator("canvas").bounding_box()
            page.set_input_files("#file", str(photo))
            page.wait_for_selector("body[data-state=done]", timeout=60_000)
            assert page.locator("body").get_attribute("data-faces") == "1"
            assert "1 face(s), 68 landmarks each" in page.locator("#status").inner_text()
            shot = tmp_path / "canvas.png"
            page.locator("canvas").screenshot(path=str(shot))
        finally:
            browser.close()
    assert before["width"] <= 2                          # an empty canvas (its 1-px border) before the drop
    drawn = cv2.imread(str(shot))
    original = cv2.imread(str(photo))
    # the canvas shows the photo at its size (+ its 1-px border, + 1 px where the page puts it at a fraction)
    assert np.all(np.abs(np.subtract(drawn.shape[:2], original.shape[:2])) <= 3), (drawn.shape, original.shape)
    drawn = cv2.resize(drawn[1:-1, 1:-1], original.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    green = (drawn[:, :, 1] > 200) & (drawn[:, :, 0] < 60) & (drawn[:, :, 2] < 60)
    was_green = (original[:, :, 1] > 200) & (original[:, :, 0] < 60) & (original[:, :, 2] < 60)
    assert green.sum() > 68 * 10 and was_green.sum() < 20
    # the dots sit on the face: inside the annotated landmark box, grown by a fifth
    gt = read_pts(photo.with_suffix(".pts"))
    lo, hi = gt.min(axis=0), gt.max(axis=0)
    margin = 0.2 * (hi - lo)
    ys, xs = np.nonzero(green)
    inside = (xs >= lo[0] - margin[0]) & (xs <= hi[0] + margin[0]) & (ys >= lo[1] - margin[1]) & (ys <= hi[1] + margin[1])
    assert inside.mean() > 0.95
