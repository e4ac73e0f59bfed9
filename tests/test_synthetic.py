"""Synthetic faces: determinism, landmarks on the drawn features, visibility against the painted pixels,
self-occlusion under yaw, the 68/29 index maps against the schemes' flip permutations, and `lgrn synth`
output parsed as the release's list format."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lgrn.cli.synth import main
from lgrn.data.synthetic import INDEX_MAPS, SyntheticFaces, generate_samples, landmark_index_map
from lgrn.data.synthetic.draw import fill, inside
from lgrn.data.synthetic.shape import FaceParams, build_geometry, load_shape_model
from lgrn.landmarks import get_scheme


@pytest.fixture(scope="module")
def clean_renders():
    """Unoccluded, undegraded faces (exact colours) of seed 3."""
    faces = SyntheticFaces(24, seed=3, occlusion_rate=0.0, degrade=False)
    return [faces.render(i) for i in range(len(faces))]


def _frontal(**changes) -> FaceParams:
    base = FaceParams(identity=np.zeros(10), mouth_open=0.0, smile=0.0, brow_raise=0.0, eye_open=1.0,
                      gaze=(0.0, 0.0), yaw=0.0, pitch=0.0, roll=0.0, forehead=0.6)
    return dataclasses.replace(base, **changes)


def test_deterministic_per_seed_and_index():
    a = SyntheticFaces(4, seed=7)
    b = SyntheticFaces(4, seed=7)
    later_first = [b.sample(i) for i in (3, 2, 1, 0)][::-1]     # order of generation does not matter
    for i, sb in enumerate(later_first):
        sa = a.sample(i)
        assert sa.image.tobytes() == sb.image.tobytes()
        np.testing.assert_array_equal(sa.landmarks, sb.landmarks)
        np.testing.assert_array_equal(sa.visibility, sb.visibility)
        assert sa.attributes == sb.attributes and sa.name == f"synth_{i:06d}.png"
    other = SyntheticFaces(4, seed=8).sample(0)
    assert other.image.tobytes() != a.sample(0).image.tobytes()
    assert np.abs(other.landmarks - a.sample(0).landmarks).max() > 1.0
    assert a.sample(0).image.tobytes() != a.sample(1).image.tobytes()


def test_sample_contract_and_crop_fill():
    faces = SyntheticFaces(6, seed=1, size=200)
    assert len(faces) == 6
    for i in range(len(faces)):
        s = faces[i]
        assert s.image.shape == (200, 200, 3) and s.image.dtype == np.uint8
        assert s.landmarks.shape == (98, 2) and s.landmarks.dtype == np.float64
        assert s.visibility.shape == (98,) and s.visibility.dtype == bool
        assert s.image_path == "" and s.source.endswith(f":{i}")
        assert set(s.attributes) == {"pose", "expression", "illumination", "makeup", "occlusion", "blur"}
        assert ((s.landmarks >= 0) & (s.landmarks <= 199)).all()
        # The release crop: landmark box side = 1/1.2 of the image, jittered by -8 %..+6 %.
        side = (s.landmarks.max(axis=0) - s.landmarks.min(axis=0)).max()
        assert 0.92 / 1.2 * 200 - 1e-6 <= side <= 1.06 / 1.2 * 200 + 1e-6
        np.testing.assert_allclose(s.bbox, np.r_[s.landmarks.min(axis=0), s.landmarks.max(axis=0)])
    with pytest.raises(IndexError):
        faces.sample(6)
    with pytest.raises(ValueError, match="schemes"):
        SyntheticFaces(2, scheme="ibug")
    with pytest.raises(ValueError, match="occlusion_rate"):
        SyntheticFaces(2, occlusion_rate=1.5)
    with pytest.raises(ValueError, match="size"):
        SyntheticFaces(2, size=32)


def test_other_schemes_are_index_maps_of_the_98_points():
    full = SyntheticFaces(2, seed=4).sample(1)
    for scheme, k in (("300w68", 68), ("cofw29", 29)):
        s = SyntheticFaces(2, seed=4, scheme=scheme).sample(1)
        assert s.landmarks.shape == (k, 2) and s.visibility.shape == (k,)
        idx = landmark_index_map(scheme)
        np.testing.assert_array_equal(s.landmarks, full.landmarks[idx])
        np.testing.assert_array_equal(s.visibility, full.visibility[idx])
        assert s.image.tobytes() == full.image.tobytes()
    assert set(SyntheticFaces(1, scheme="300w68").sample(0).attributes) >= {"common", "challenging"}
    serial = generate_samples(3, seed=2, size=96)
    parallel = generate_samples(3, seed=2, size=96, workers=2)
    assert [s.image.tobytes() for s in serial] == [s.image.tobytes() for s in parallel]
    assert all(np.array_equal(a.landmarks, b.landmarks) for a, b in zip(serial, parallel))


@pytest.mark.parametrize("scheme", ["300w68", "cofw29"])
def test_index_maps_commute_with_flips(scheme):
    index_map = landmark_index_map(scheme)
    target = get_scheme(scheme)
    p98 = np.asarray(get_scheme("wflw98").flip_permutation)
    pk = np.asarray(target.flip_permutation)
    assert len(index_map) == target.num_landmarks == len(set(index_map.tolist()))
    # Flipping then mapping == mapping then flipping.
    np.testing.assert_array_equal(index_map[pk], p98[index_map])
    # Geometry: the mirror image of a frontal mean face, re-ordered by the scheme's flip permutation,
    # is the face itself (up to the WFLW mean shape's own asymmetry, < 0.03 inter-ocular distances).
    geo = build_geometry(load_shape_model(), _frontal(), 256, np.random.default_rng(0))
    shape = geo.shape[index_map]
    mirrored = shape[pk] * np.array([-1.0, 1.0])
    assert np.abs(mirrored - shape).max() < 0.03
    # ... and a wrong permutation (identity) is far off, so the check has teeth.
    assert np.abs(shape * np.array([-1.0, 1.0]) - shape).max() > 0.5


def test_pupil_landmarks_sit_on_the_darkest_pixels():
    faces = SyntheticFaces(16, seed=11, occlusion_rate=0.0)     # default degradations: blur, light, noise
    checked = 0
    for i in range(len(faces)):
        r = faces.render(i)
        grey = cv2.blur(cv2.cvtColor(r.image, cv2.COLOR_BGR2GRAY).astype(np.float32), (3, 3))
        for eye, pupil in ((np.arange(60, 68), 96), (np.arange(68, 76), 97)):
            if not r.visibility[np.r_[eye, pupil]].all():
                continue
            mask = np.zeros(grey.shape, np.uint8)
            fill(mask, r.landmarks[eye], 255)
            mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
            if mask.sum() == 0:
                continue
            ys, xs = np.nonzero(mask)
            k = np.argmin(grey[ys, xs])
            assert np.hypot(xs[k] - r.landmarks[pupil, 0], ys[k] - r.landmarks[pupil, 1]) <= 2.5, (i, pupil)
            checked += 1
    assert checked >= 20


def _edge_offset(image, corner, centre, inside_colours, outside_colours) -> float:
    """Walk from the feature centre through its corner landmark; return the signed distance (px, + =
    beyond the landmark) of the last pixel closer to the feature's colours than to the skin's."""
    direction = (corner - centre) / np.linalg.norm(corner - centre)
    steps = np.arange(-6.0, 6.01, 0.5)
    last = None
    for t in steps:
        x, y = np.round(corner + t * direction).astype(int)
        px = image[y, x].astype(float)
        d_in = min(np.linalg.norm(px - c) for c in inside_colours)
        d_out = min(np.linalg.norm(px - c) for c in outside_colours)
        if d_in < d_out:
            last = t
    assert last is not None
    return last


def test_mouth_and_eye_corners_lie_on_the_feature_edges(clean_renders):
    checked = 0
    for r in clean_renders:
        if abs(r.geometry.params.yaw) > 20 or r.look.makeup or not r.visibility[[60, 72, 76, 82]].all():
            continue
        lm, look = r.landmarks, r.look
        skin = [look.skin * f for f in (1.0, 0.95, 0.86)]
        lips = [look.lip, look.lip * 0.85, look.lip * 0.45]
        mouth_centre = lm[76:88].mean(axis=0)
        eye_parts = [look.sclera, look.lash, look.lash * 0.6 + look.skin * 0.4, look.iris]
        for corner, centre, colours in ((76, mouth_centre, lips), (82, mouth_centre, lips),
                                        (60, lm[60:68].mean(axis=0), eye_parts),
                                        (72, lm[68:76].mean(axis=0), eye_parts)):
            offset = _edge_offset(r.image, lm[corner], centre, colours, skin)
            assert -2.0 <= offset <= 2.0, (corner, offset)
            checked += 1
    assert checked >= 16


def test_visibility_is_false_exactly_where_occluders_painted():
    occluded = SyntheticFaces(12, seed=5, occlusion_rate=1.0, degrade=False)
    clear = SyntheticFaces(12, seed=5, occlusion_rate=0.0, degrade=False)
    degraded = SyntheticFaces(12, seed=5, occlusion_rate=1.0)
    total_hidden = 0
    for i in range(len(occluded)):
        a, b = occluded.render(i), clear.render(i)
        assert a.occluders and not b.occluders and not b.occluded.any()
        np.testing.assert_array_equal(a.landmarks, b.landmarks)      # occluders change nothing else
        painted = np.any(a.image != b.image, axis=2)
        on_face = a.self_visible & ~a.nose_hidden
        hit = inside(painted.astype(np.uint8), a.landmarks)
        np.testing.assert_array_equal(a.visibility[on_face], ~hit[on_face])
        np.testing.assert_array_equal(a.visibility, b.visibility & ~hit)
        total_hidden += int(hit[on_face].sum())
        d = degraded.render(i)                                          # blur/light/noise move nothing
        np.testing.assert_array_equal(d.visibility, a.visibility)
        assert degraded.sample(i).attributes["occlusion"] == int(a.occluded.any())
    assert total_hidden > 20


def test_yaw_hides_the_far_side_contour():
    model = load_shape_model()
    frontal = build_geometry(model, _frontal(), 256, np.random.default_rng(0))
    assert frontal.self_visible.all()
    for yaw, far, near in ((40.0, np.arange(26, 33), np.arange(0, 17)), (-40.0, np.arange(0, 7), np.arange(16, 33))):
        geo = build_geometry(model, _frontal(yaw=yaw), 256, np.random.default_rng(0))
        assert not geo.self_visible[far].any() and geo.self_visible[near].all()
        far_wing, near_wing = (59, 55) if yaw > 0 else (55, 59)      # the nose's far wing turns away too
        assert not geo.self_visible[far_wing] and geo.self_visible[near_wing]
        # Drawn skin: hidden contour points lie inside the face, visible ones on its outline.
        mask = np.zeros((256, 256), np.uint8)
        fill(mask, geo.silhouette, 255)
        outside = cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, 5)
        depth_in = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5)
        for k in range(33):
            x, y = np.round(geo.landmarks[k]).astype(int)
            if geo.self_visible[k]:
                assert depth_in[y, x] <= 1.5, k            # on the silhouette's edge
            else:
                assert outside[y, x] <= 1.0, k             # under the skin, behind the limb (a point just
                # turned away sits on the limb itself, so allow the pixel rounding there)
        assert depth_in[tuple(np.round(geo.landmarks[far[-1] if yaw > 0 else far[0]]).astype(int)[::-1])] > 2
    # The generator's own large-yaw faces: hidden contour points are on the side the face turns away from.
    faces = SyntheticFaces(40, seed=2, occlusion_rate=0.0)
    seen = 0
    for i in range(len(faces)):
        r = faces.render(i)
        yaw = r.geometry.params.yaw
        if abs(yaw) >= 35:
            hidden = np.nonzero(~r.visibility[:33])[0]
            assert len(hidden) > 0 and (hidden > 16).all() == (yaw > 0)
            assert faces.attributes(r)["pose"] == 1
            seen += 1
    assert seen >= 2


def _read_list(root: Path, source: Path, k: int):
    try:
        from lgrn.data.readers import read_release_list
    except ImportError:   # readers not there: a local parser of the same format
        read_release_list = None
    if read_release_list is not None:
        return [(s.name, s.landmarks, s.visibility) for s in read_release_list(root, source, k)]
    rows = []
    for line in source.read_text().splitlines():
        tokens = line.split()
        assert len(tokens) == 4 * k + 1
        values = np.asarray(tokens[:-1], dtype=float)
        rows.append((tokens[-1], values[:2 * k].reshape(k, 2), values[2 * k:].reshape(k, 2).min(axis=1) > 0))
    return rows


def test_lgrn_synth_writes_the_release_format(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["--num", "5", "--out", str(out), "--size", "128", "--seed", "9", "--split", "test",
                 "--occlusion-rate", "0.6", "--workers", "1", "--no-progress"]) == 0
    assert "wrote 5 images" in capsys.readouterr().out
    source = out / "test_98pt.txt"
    lines = source.read_text().splitlines()
    assert len(lines) == 5 and all(len(line.split()) == 4 * 98 + 1 for line in lines)
    rows = _read_list(out, source, 98)
    faces = SyntheticFaces(5, seed=9, size=128, occlusion_rate=0.6)
    attr_lines = (out / "test_98pt_attr.txt").read_text().splitlines()
    for i, (name, landmarks, visibility) in enumerate(rows):
        s = faces.sample(i)
        assert name == f"Image/synth_{i:06d}.png"
        np.testing.assert_allclose(landmarks, s.landmarks, atol=1e-4)
        np.testing.assert_array_equal(visibility, s.visibility)
        assert cv2.imread(str(out / name)).tobytes() == s.image.tobytes()    # PNG is lossless
        flags = attr_lines[i].split()
        assert flags[-1] == name
        assert [int(f) for f in flags[:-1]] == [s.attributes[k] for k in
                                                ("pose", "expression", "illumination", "makeup", "occlusion", "blur")]


def test_lgrn_synth_workers_do_not_change_the_output(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["--num", "4", "--size", "96", "--scheme", "cofw29", "--no-progress"]
    assert main(args + ["--out", str(one), "--workers", "1"]) == 0
    assert main(args + ["--out", str(two), "--workers", "2"]) == 0
    assert (one / "train_29pt.txt").read_text() == (two / "train_29pt.txt").read_text()
    assert all(len(line.split()) == 4 * 29 + 1 for line in (one / "train_29pt.txt").read_text().splitlines())
    assert not (one / "train_29pt_attr.txt").exists()         # COFW has no subsets
    for i in range(4):
        name = f"synth_{i:06d}.png"
        assert (one / "Image" / name).read_bytes() == (two / "Image" / name).read_bytes()


def test_cli_and_shape_model_errors(tmp_path, capsys):
    assert main(["--num", "0", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "--num must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--num", "2", "--out", str(tmp_path / "x"), "--scheme", "ibug"])
    bad = tmp_path / "model.json"
    bad.write_text(json.dumps({"mean": [[0, 0]] * 98, "modes": [[[0, 0]] * 97], "mode_std": [1.0]}))
    with pytest.raises(ValueError, match=r"model\.json: field 'modes'"):
        load_shape_model(str(bad))
    bad.write_text("{\n  \"mean\": [1, 2,\n")
    with pytest.raises(ValueError, match=r"model\.json:\d+: not valid JSON"):
        load_shape_model(str(bad))
    assert set(INDEX_MAPS) == {"wflw98", "300w68", "cofw29"}
