"""lgrn.data.dataset and lgrn.data.cache: items seeded by (seed, epoch, index) and identical with 0 or 2
DataLoader workers, image decoding of every PNG flavour, errors naming the file and the list line, the
decoded-image cache (equal items, reuse, rebuild on change), PDB modes, the validation hold-out, the
test set with attributes and the synthetic / GPU-augmentation wiring."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lgrn.config import resolve_config
from lgrn.data import Sample
from lgrn.data import cache as cache_module
from lgrn.data import dataset as dataset_module
from lgrn.data.cache import build_image_cache, fingerprint, load_image
from lgrn.data.dataset import LandmarkDataset, build_test_dataset, build_train_dataset, holdout_split
from lgrn.data.pdb import pdb_repeat_factors
from lgrn.data.transforms import TrainTransform
from lgrn.landmarks import get_scheme

SCHEME = get_scheme("wflw98")
AUGMENT = dict(rotation=40, translate_rate=0.1, mirror=True, is_occluded=True)


def write_list(root, name: str, count: int, seed: int) -> list[np.ndarray]:
    """``count`` textured 64x64 PNGs under root/Image and a release list file root/<name>."""
    rng = np.random.default_rng(seed)
    (root / "Image").mkdir(exist_ok=True)
    lines, all_landmarks = [], []
    for i in range(count):
        image = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64))
        image_name = f"Image/{name[:4]}_{i:02d}.png"
        cv2.imwrite(str(root / image_name), image)
        landmarks = rng.uniform(16, 48, (98, 2))
        all_landmarks.append(landmarks)
        lines.append(" ".join(f"{v:.4f}" for v in landmarks.reshape(-1)) + f" {image_name}")
    (root / name).write_text("\n".join(lines) + "\n")
    return all_landmarks


def make_config(root, train: dict | None = None, test: dict | None = None) -> dict:
    common = {"num_kpts": 98, "crop_size": 64, "is_color": True}
    raw = {"structure": dict(common),
           "train_param": {**common, **AUGMENT, "train_root": str(root), "train_source": str(root / "train_98pt.txt"),
                           **(train or {})},
           "test_param": {**common, "val_root": str(root), "val_source": str(root / "test_98pt.txt"), **(test or {})}}
    return resolve_config(raw)


@pytest.fixture()
def data_root(tmp_path):
    write_list(tmp_path, "train_98pt.txt", 12, seed=0)
    write_list(tmp_path, "test_98pt.txt", 4, seed=1)
    return tmp_path


def assert_items_equal(a: dict, b: dict) -> None:
    for key in ("image", "landmarks", "visibility", "matrix"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert a["index"] == b["index"]


def test_items_are_seeded_by_seed_epoch_and_index(data_root):
    dataset = build_train_dataset(make_config(data_root), SCHEME, seed=3).dataset
    item = dataset[5]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["landmarks"].shape == (98, 2) and item["visibility"].dtype == torch.bool
    assert item["matrix"].shape == (2, 3) and item["index"] == 5 and item["sample_index"] == 5
    assert_items_equal(item, dataset[5])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[5]["landmarks"], item["landmarks"])
    dataset.set_epoch(0)
    assert_items_equal(item, dataset[5])
    other = build_train_dataset(make_config(data_root), SCHEME, seed=4).dataset
    assert not torch.equal(other[5]["landmarks"], item["landmarks"])
    # the item is the transform of the sample with the generator seeded by (seed, epoch, index)
    expected = TrainTransform(make_config(data_root)["train_param"], SCHEME)(
        load_image(dataset.samples[5]), dataset.samples[5].landmarks, np.random.default_rng([3, 0, 5]))
    np.testing.assert_array_equal(item["image"].numpy(), expected["image"])


def test_dataloader_with_0_or_2_workers_gives_identical_batches(data_root):
    dataset = build_train_dataset(make_config(data_root), SCHEME, seed=1).dataset

    def epochs(workers: int) -> list[dict]:
        loader = DataLoader(dataset, batch_size=4, shuffle=False, num_workers=workers,
                            persistent_workers=workers > 0)
        batches = []
        for epoch in (0, 1):
            dataset.set_epoch(epoch)                     # reaches persistent workers via shared memory
            batches.extend(loader)
        return batches

    serial, parallel = epochs(0), epochs(2)
    assert len(serial) == len(parallel) == 6
    for a, b in zip(serial, parallel, strict=True):
        for key in ("image", "landmarks", "visibility", "matrix", "index"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert not torch.equal(serial[0]["image"], serial[3]["image"])          # epoch 1 differs from epoch 0


def test_image_flavours_become_bgr_uint8(tmp_path):
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    gray = bgr[..., 0].copy()
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    cv2.imwrite(str(tmp_path / "bgra.png"), np.dstack([bgr, np.full((20, 30), 9, np.uint8)]))
    cv2.imwrite(str(tmp_path / "deep.png"), bgr.astype(np.uint16) * 257)
    for name, expected in [("gray.png", np.dstack([gray] * 3)), ("bgra.png", bgr), ("deep.png", bgr)]:
        out = load_image(Sample(image_path=tmp_path / name, name=name, landmarks=np.zeros((98, 2))))
        assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
        np.testing.assert_array_equal(out, expected, err_msg=name)
    in_memory = Sample(image_path="", name="m", landmarks=np.zeros((98, 2)), image=gray.astype(np.uint16) * 257)
    np.testing.assert_array_equal(load_image(in_memory), np.dstack([gray] * 3))


def test_missing_or_corrupt_image_names_path_and_line(data_root):
    dataset = build_train_dataset(make_config(data_root), SCHEME).dataset
    (data_root / "Image" / "trai_03.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"train_98pt.txt:4.*trai_03.png"):
        dataset[3]
    (data_root / "Image" / "trai_04.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"train_98pt.txt:5.*trai_04.png"):
        dataset[4]
    bad = LandmarkDataset([Sample(image_path=data_root / "Image" / "trai_00.png", name="x",
                                  landmarks=np.zeros((68, 2)), source="list.txt:7")], SCHEME, dataset.transform)
    with pytest.raises(ValueError, match=r"list.txt:7: 68 landmarks.*expects 98"):
        bad[0]


def test_cache_gives_identical_items_and_is_reused(data_root, monkeypatch):
    cache_dir = data_root / "cache"
    plain = build_train_dataset(make_config(data_root), SCHEME, seed=2).dataset
    cached = build_train_dataset(make_config(data_root, {"cache": True}), SCHEME, seed=2,
                                 cache_dir=cache_dir, progress=False).dataset
    assert cached.cache is not None and len(list(cache_dir.glob("train_*.u8"))) == 1
    for index in range(len(plain)):
        assert_items_equal(plain[index], cached[index])

    def no_decoding(sample):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(cache_module, "load_image", no_decoding)
    again = build_image_cache(plain.samples, cache_dir, progress=False)
    assert again.data_path == cached.cache.data_path
    monkeypatch.undo()
    # a changed image changes the fingerprint: a new cache holding the new pixels
    new_pixels = np.full((64, 64, 3), 17, np.uint8)
    cv2.imwrite(str(data_root / "Image" / "trai_02.png"), new_pixels)
    rebuilt = build_image_cache(plain.samples, cache_dir, progress=False)
    assert rebuilt.key != cached.cache.key
    np.testing.assert_array_equal(rebuilt[2], new_pixels)
    assert fingerprint(plain.samples) == rebuilt.key


def test_cache_dir_key_then_environment_then_default(data_root, monkeypatch):
    monkeypatch.delenv("LGRN_CACHE_DIR", raising=False)
    default = build_train_dataset(make_config(data_root, {"cache": True}), SCHEME, progress=False).dataset
    assert default.cache.data_path.parent == data_root.resolve() / ".lgrn_cache"
    monkeypatch.setenv("LGRN_CACHE_DIR", str(data_root / "from_env"))
    from_env = build_train_dataset(make_config(data_root, {"cache": True}), SCHEME, progress=False).dataset
    assert from_env.cache.data_path.parent == data_root / "from_env"
    keyed = make_config(data_root, {"cache": True, "cache_dir": str(data_root / "from_key")})
    from_key = build_train_dataset(keyed, SCHEME, progress=False).dataset
    assert from_key.cache.data_path.parent == data_root / "from_key"
    assert len(list((data_root / "from_key").glob("train_*.u8"))) == 1


def test_pdb_modes(data_root):
    shapes = np.stack([s.landmarks for s in build_train_dataset(make_config(data_root), SCHEME).dataset.samples])
    factors = pdb_repeat_factors(shapes, 9)
    assert factors.max() > 1
    repeat = build_train_dataset(make_config(data_root, {"is_pdb": 9}), SCHEME)
    assert len(repeat.dataset) == repeat.num_samples == factors.sum() and repeat.sample_weights is None
    np.testing.assert_array_equal(np.bincount(repeat.dataset.index_map, minlength=12), factors)
    capped = build_train_dataset(make_config(data_root, {"is_pdb": 9, "pdb_mode": "capped", "pdb_cap": 2}), SCHEME)
    assert len(capped.dataset) == np.minimum(factors, 2).sum()
    sampler = build_train_dataset(make_config(data_root, {"is_pdb": 9, "pdb_mode": "sampler"}), SCHEME)
    assert len(sampler.dataset) == 12 and sampler.num_samples == factors.sum()
    np.testing.assert_allclose(sampler.sample_weights * factors.sum(), factors)


def test_validation_fraction_is_deterministic_and_disjoint(data_root):
    data = build_train_dataset(make_config(data_root, {"validation": {"fraction": 0.25}}), SCHEME)
    assert len(data.dataset) == 9 and len(data.val_dataset) == 3
    train_ids, val_ids = set(data.dataset.index_map.tolist()), set(data.val_dataset.index_map.tolist())
    assert not train_ids & val_ids and len(train_ids | val_ids) == 12
    samples = data.dataset.samples
    _, val_reversed = holdout_split(samples[::-1], 0.25)
    assert {samples[::-1][i].name for i in val_reversed} == {samples[i].name for i in val_ids}
    item = data.val_dataset[0]                                # test transform: identity geometry
    np.testing.assert_allclose(item["landmarks"].numpy(), samples[item["sample_index"]].landmarks, atol=1e-4)


def test_test_dataset_keeps_order_and_reads_attributes(data_root):
    names = [line.split()[-1] for line in (data_root / "test_98pt.txt").read_text().splitlines()]
    flags = ["1 0 0 0 1 0", "0 0 0 0 0 0", "0 1 0 0 0 1", "1 1 1 1 1 1"]
    lines = [f"{f} {n}\n" for f, n in zip(flags, names, strict=True)]
    (data_root / "test_98pt_attr.txt").write_text("".join(lines))
    dataset = build_test_dataset(make_config(data_root), SCHEME)
    assert [s.name for s in dataset.samples] == names
    assert dataset.samples[2].attributes == {"pose": 0, "expression": 1, "illumination": 0, "makeup": 0,
                                             "occlusion": 0, "blur": 1}
    item = dataset[1]
    np.testing.assert_allclose(item["landmarks"].numpy(), dataset.samples[1].landmarks, atol=1e-4)


def test_synthetic_and_gpu_wiring(data_root, monkeypatch):
    calls = []

    class StandIn:                                # the real module is written by another helper
        def __init__(self, num_images, seed=0, size=256, scheme="wflw98", occlusion_rate=0.3):
            calls.append((num_images, seed, size, scheme, occlusion_rate))
            self.num_images, self.size = num_images, size

        def __len__(self):
            return self.num_images

        def sample(self, i):
            image = np.full((self.size, self.size), (40 + i) % 256, np.uint8)
            return Sample(image_path="", name=f"synth_{i:06d}.png", landmarks=np.full((98, 2), 20.0 + i),
                          image=image, visibility=np.arange(98) % 2 == 0, source=f"synthetic:{i}")

    monkeypatch.setattr(dataset_module, "SyntheticFaces", StandIn)
    config = make_config(data_root, {"dataset": "synthetic", "synthetic": {"num_images": 5, "seed": 9},
                                     "augment_on": "gpu", "cache": True})
    data = build_train_dataset(config, SCHEME)
    assert calls == [(5, 9, 64, "wflw98", 0.3)] and len(data.dataset) == 5 and data.dataset.cache is None
    item = data.dataset[3]                        # raw uint8 for GpuAugment, visibility carried through
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (64, 64, 3)
    assert int(item["image"][0, 0, 0]) == 43 and item["visibility"].tolist() == (np.arange(98) % 2 == 0).tolist()
    test = build_test_dataset(make_config(data_root, test={"dataset": "synthetic"}), SCHEME)
    assert calls[-1] == (300, 1, 64, "wflw98", 0.3) and len(test) == 300


def test_an_undecodable_training_image_is_named_before_training(tmp_path, repo_root):
    """A damaged image in the training list is found when the dataset is built, with its list line."""
    import cv2 as _cv2
    from lgrn import load_config
    from lgrn.config import get_scheme_for_config
    from lgrn.data.dataset import build_train_dataset

    root = tmp_path / "Image"
    root.mkdir()
    lines = []
    for i in range(4):
        _cv2.imwrite(str(root / f"{i}.jpg"), np.full((64, 64, 3), 40 * i, np.uint8))
        points = " ".join(f"{10 + k} {20 + k}" for k in range(98))
        lines.append(f"{points} {i}.jpg")
    (root / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    config = load_config(repo_root / "experiments" / "synthetic" / "tiny.yaml",
                         overrides=["train_param.dataset=list", f"train_param.train_root={root}",
                                    f"train_param.train_source={tmp_path / 'train.txt'}"])
    with pytest.raises(ValueError, match=r"1 training image\(s\) cannot be decoded.*\n  .*train.txt:3: .*2.jpg"):
        build_train_dataset(config, get_scheme_for_config(config))
