"""Authors' checkpoints: a release-layout state dict filled with random values (random edge logits and
BN statistics included) must give the SAME landmarks through lgrn's converted model as through an
independent functional re-implementation of the release's forward pass written here, which reads the
release-named tensors directly (docs/models.md, "Converting the authors' checkpoints")."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lgrn
from lgrn.checkpoint import load_checkpoint, save_checkpoint
from lgrn.config import load_config
from lgrn.models import build_model, convert_checkpoint_file, convert_release_state_dict, load_model
from lgrn.cli.convert import main as convert_main

REPO = Path(__file__).resolve().parents[1]
GRAPHS = REPO / "src" / "lgrn" / "landmarks" / "graphs"
KEYS_DOC = REPO.parent / "shared" / "reference" / "release_state_dict_keys.md"
BLOCKS = (3, 4, 6, 3)
WIDTHS = (64, 128, 256, 512)


# ----------------------------------------------------------------------------------------------
# Release layout, written independently of lgrn's modules.

def release_shapes(num_points: int, nnz: int, predictor: str, feat: int = 8) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["backbone.conv1.weight"] = (64, 3, 7, 7)
    bn("backbone.bn1", 64)
    c_in = 64
    for stage, (blocks, width) in enumerate(zip(BLOCKS, WIDTHS), start=1):
        for b in range(blocks):
            p = f"backbone.layer{stage}.{b}"
            shapes[f"{p}.conv1.weight"] = (width, c_in if b == 0 else width, 3, 3)
            bn(f"{p}.bn1", width)
            shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
            bn(f"{p}.bn2", width)
            if b == 0 and stage > 1:
                shapes[f"{p}.downsample.0.weight"] = (width, c_in, 1, 1)
                bn(f"{p}.downsample.1", width)
        c_in = width
    shapes["backbone.fc.weight"] = (1000, 512)
    shapes["backbone.fc.bias"] = (1000,)
    if predictor == "FCPredictor":
        shapes.update({"predictor.fc1.weight": (256, 512 * feat * feat), "predictor.fc1.bias": (256,),
                       "predictor.fc2.weight": (2 * num_points, 256), "predictor.fc2.bias": (2 * num_points,)})
        return shapes
    m = "predictor.map_to_node"
    shapes[f"{m}.conv_out.0.weight"] = (256, 512, 3, 3)
    shapes[f"{m}.conv_out.0.bias"] = (256,)
    bn(f"{m}.conv_out.1", 256)
    shapes[f"{m}.conv_to_node.0.weight"] = (4 * num_points, 256, 3, 3)
    shapes[f"{m}.conv_to_node.0.bias"] = (4 * num_points,)
    bn(f"{m}.conv_to_node.1", 4 * num_points)

    def gconv(prefix: str, f_in: int, f_out: int) -> None:
        shapes[f"{prefix}.W"] = (2, f_in, f_out)
        shapes[f"{prefix}.e"] = (1, nnz)
        shapes[f"{prefix}.bias"] = (f_out,)

    g = "predictor.sem_gcn"
    gconv(f"{g}.gconv_input.0.gconv", 4 * feat * feat, 128)
    bn(f"{g}.gconv_input.0.bn", 128)
    for i in range(4):
        for j in (1, 2):
            gconv(f"{g}.gconv_layers.{i}.gconv{j}.gconv", 128, 128)
            bn(f"{g}.gconv_layers.{i}.gconv{j}.bn", 128)
    gconv(f"{g}.gconv_output", 128, 2)
    return shapes


def random_release_state(shapes: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    """Random values at sensible scales so that 40 layers neither vanish nor explode."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(int(torch.randint(0, 1000, (1,), generator=gen)))
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith("running_mean"):
            state[key] = 0.2 * torch.randn(shape, generator=gen)
        elif key.endswith(".e"):
            state[key] = torch.randn(shape, generator=gen)
        elif key.endswith(".W"):
            # The output layer is scaled up so that landmarks come out at pixel-like magnitudes.
            scale = 20.0 if shape[2] == 2 else 1.0
            state[key] = scale * torch.randn(shape, generator=gen) / np.sqrt(shape[1])
        elif key.startswith("predictor.fc2"):
            state[key] = 20.0 * torch.randn(shape, generator=gen) / np.sqrt(shape[-1])
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=gen) * np.sqrt(1.0 / fan_in)
        elif re.search(r"(bn\d?|downsample\.1|conv_out\.1|conv_to_node\.1)\.weight$", key):
            state[key] = 0.5 + 0.5 * torch.rand(shape, generator=gen)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=gen)
    return state


def release_mask(graph_file: str, num_points: int) -> torch.Tensor:
    """The release's adjacency: A[i, j] = 1 per row, max(A, A^T), plus identity; keep the pattern."""
    rows = np.loadtxt(GRAPHS / graph_file)
    adj = np.zeros((num_points, num_points))
    adj[rows[:, 0].astype(int), rows[:, 1].astype(int)] = 1.0
    adj = np.maximum(adj, adj.T) + np.eye(num_points)
    return torch.from_numpy(adj > 0)


# ----------------------------------------------------------------------------------------------
# The release's forward pass as plain functions over release-named tensors (eval mode).

def _bn(x: torch.Tensor, s: dict, p: str) -> torch.Tensor:
    return F.batch_norm(x, s[f"{p}.running_mean"], s[f"{p}.running_var"], s[f"{p}.weight"], s[f"{p}.bias"],
                        training=False, eps=1e-5)


def release_backbone(x: torch.Tensor, s: dict) -> torch.Tensor:
    x = F.relu(_bn(F.conv2d(x, s["backbone.conv1.weight"], stride=2, padding=3), s, "backbone.bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for stage, blocks in enumerate(BLOCKS, start=1):
        for b in range(blocks):
            p = f"backbone.layer{stage}.{b}"
            stride = 2 if (b == 0 and stage > 1) else 1
            out = F.relu(_bn(F.conv2d(x, s[f"{p}.conv1.weight"], stride=stride, padding=1), s, f"{p}.bn1"))
            out = _bn(F.conv2d(out, s[f"{p}.conv2.weight"], padding=1), s, f"{p}.bn2")
            if f"{p}.downsample.0.weight" in s:
                x = _bn(F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=stride), s, f"{p}.downsample.1")
            x = F.relu(out + x)
    return x


def release_sem_graph_conv(x: torch.Tensor, s: dict, p: str, mask: torch.Tensor) -> torch.Tensor:
    h0 = torch.matmul(x, s[f"{p}.W"][0])
    h1 = torch.matmul(x, s[f"{p}.W"][1])
    adj = -9e15 * torch.ones(mask.shape)
    adj[mask] = s[f"{p}.e"].reshape(-1)  # boolean-mask assignment: row-major, as released
    adj = F.softmax(adj, dim=1)
    eye = torch.eye(mask.shape[0])
    return torch.matmul(adj * eye, h0) + torch.matmul(adj * (1 - eye), h1) + s[f"{p}.bias"]


def release_graph_block(x: torch.Tensor, s: dict, p: str, mask: torch.Tensor) -> torch.Tensor:
    x = release_sem_graph_conv(x, s, f"{p}.gconv", mask)
    return F.relu(_bn(x.transpose(1, 2), s, f"{p}.bn").transpose(1, 2))


def release_forward(images: torch.Tensor, s: dict, predictor: str, num_points: int,
                    mask: torch.Tensor | None) -> torch.Tensor:
    """Returns the release's interleaved output ``[B, 2N]``."""
    s = {k.removeprefix("module."): v for k, v in s.items()}
    out4 = release_backbone(images, s)
    if predictor == "FCPredictor":
        hidden = F.relu(F.linear(out4.reshape(out4.shape[0], -1), s["predictor.fc1.weight"], s["predictor.fc1.bias"]))
        return F.linear(hidden, s["predictor.fc2.weight"], s["predictor.fc2.bias"])
    m = "predictor.map_to_node"
    x = F.relu(_bn(F.conv2d(out4, s[f"{m}.conv_out.0.weight"], s[f"{m}.conv_out.0.bias"], padding=1), s,
                   f"{m}.conv_out.1"))
    x = F.relu(_bn(F.conv2d(x, s[f"{m}.conv_to_node.0.weight"], s[f"{m}.conv_to_node.0.bias"], padding=1), s,
                   f"{m}.conv_to_node.1"))
    x = x.reshape(x.shape[0], num_points, -1)
    g = "predictor.sem_gcn"
    x = release_graph_block(x, s, f"{g}.gconv_input.0", mask)
    for i in range(4):
        y = release_graph_block(x, s, f"{g}.gconv_layers.{i}.gconv1", mask)
        x = x + release_graph_block(y, s, f"{g}.gconv_layers.{i}.gconv2", mask)
    x = release_sem_graph_conv(x, s, f"{g}.gconv_output", mask)
    return x.reshape(x.shape[0], 2 * num_points)


# ----------------------------------------------------------------------------------------------

CASES = {
    "wflw_gcn": ("experiments/WLFW/config_resnet.yaml", "BaseGCNPredictor", 98, "98pts_top3.txt"),
    "wflw_fc": ("experiments/WLFW/config_resnet_fc.yaml", "FCPredictor", 98, None),
    "300w_gcn": ("experiments/300W/config_resnet.yaml", "BaseGCNPredictor", 68, "68pts.txt"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_converted_model_matches_release_forward(case: str) -> None:
    config_path, predictor, num_points, graph = CASES[case]
    mask = release_mask(graph, num_points) if graph else None
    nnz = int(mask.sum()) if mask is not None else 0
    # The release's layout is written for any stride-32 map size; 64x64 inputs (2x2 maps) keep it fast.
    state = random_release_state(release_shapes(num_points, nnz, predictor, feat=2), seed=len(case))
    state = {f"module.{k}": v for k, v in state.items()} if case == "wflw_gcn" else state  # DataParallel file
    config = load_config(REPO / config_path, overrides=["structure.crop_size=64"])
    model = build_model(config)
    model.load_state_dict(convert_release_state_dict(state, config), strict=True)
    model.eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = release_forward(images, state, predictor, num_points, mask)
        got = model(images)
    assert got.shape == (2, num_points, 2)
    assert expected.std() > 3.0, "degenerate test data: outputs too uniform to compare"
    assert (got.reshape(2, -1) - expected).abs().max().item() < 1e-4


def test_release_layout_matches_reference_key_file() -> None:
    # The layout generator above against the authors' key listing (shared reference), when present.
    if not KEYS_DOC.is_file():
        pytest.skip(f"{KEYS_DOC} not available")
    text = KEYS_DOC.read_text()
    sections = text.split("## ")[1:]
    for section, (predictor, nnz) in zip(sections, (("BaseGCNPredictor", 470), ("FCPredictor", 0))):
        listed = {}
        for name, shape in re.findall(r"^(\S+) \(([\d, ]*)\) \w+$", section, flags=re.M):
            listed[name] = tuple(int(v) for v in shape.replace(" ", "").split(",") if v)
        ours = release_shapes(98, nnz, predictor)
        visible = {k: v for k, v in ours.items() if k in listed}
        assert len(listed) >= len(ours) - 8  # the file elides a few lines with "truncated"
        assert visible == {k: listed[k] for k in visible}
        assert set(listed) <= set(ours)


def _release_checkpoint(tmp_path: Path, predictor: str = "BaseGCNPredictor", legacy: bool = False) -> tuple:
    mask = release_mask("98pts_top3.txt", 98)
    state = random_release_state(release_shapes(98, int(mask.sum()), predictor, feat=2), seed=3)
    checkpoint = {"epoch": 42, "optimizer": {"state": {}, "param_groups": [{"lr": 0.01, "params": [0, 1]}]},
                  "state_dict": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / "checkpoint_best.pth.tar"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=not legacy)
    return path, state, mask


def test_convert_cli_and_load_model(tmp_path: Path) -> None:
    path, state, mask = _release_checkpoint(tmp_path, legacy=True)  # PyTorch 1.0-era file format
    config_path = tmp_path / "config.yaml"  # the released config at 64x64 (2x2 maps) for speed
    config_path.write_text((REPO / "experiments/WLFW/config_resnet.yaml").read_text().replace("crop_size: 256",
                                                                                              "crop_size: 64"))
    out = tmp_path / "converted.pth"
    assert convert_main([str(path), str(out), "--config", str(config_path)]) == 0
    checkpoint = load_checkpoint(out)
    assert checkpoint["epoch"] == 42 and checkpoint["optimizer"] is None
    assert checkpoint["scheme"]["name"] == "wflw98"
    assert not any(k.startswith("backbone.fc") for k in checkpoint["state_dict"])
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = release_forward(images, state, "BaseGCNPredictor", 98, mask)
        from_lgrn = load_model(out)                      # lgrn checkpoint: config from the file
        from_release = load_model(path, config=config_path)  # authors' file converted on the fly
        assert not from_lgrn.training
        for model in (from_lgrn, from_release):
            assert (model(images).reshape(1, -1) - expected).abs().max().item() < 1e-4


def test_convert_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, state, _ = _release_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="pass config="):
        load_model(path)
    # A 68-point config cannot take 98-point weights: the error lists the offending keys.
    config68 = load_config(REPO / "experiments/300W/config_resnet.yaml", overrides=["structure.crop_size=64"])
    with pytest.raises(ValueError, match=r"predictor\.map_to_node\.conv_to_node\.0\.weight: checkpoint \(392"):
        convert_release_state_dict(state, config68)
    # FC weights into a graph-head config: missing and unexpected keys are listed.
    fc_state = random_release_state(release_shapes(98, 0, "FCPredictor", feat=2), seed=1)
    config = load_config(REPO / "experiments/WLFW/config_resnet.yaml", overrides=["structure.crop_size=64"])
    with pytest.raises(ValueError, match=r"predictor\.fc1\.weight") as info:
        convert_release_state_dict(fc_state, config)
    assert "head.sem_gcn.gconv_output.edge_logits" in str(info.value)
    # The IBN + CoordConv "ResNet34" checkpoint of the authors' issue #1 is refused by name.
    ibn = dict(state, **{"backbone.layer1.0.bn1.IN.weight": torch.ones(32)})
    with pytest.raises(ValueError, match="IBN-a"):
        convert_release_state_dict(ibn, config)
    config300w = str(REPO / "experiments/300W/config_resnet.yaml")
    rc = convert_main([str(path), str(tmp_path / "x.pth"), "--config", config300w, "--set", "structure.crop_size=64"])
    assert rc == 1 and "conv_to_node" in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()


def test_convert_into_dynamic_config_starts_from_static_model() -> None:
    mask = release_mask("98pts_top3.txt", 98)
    state = random_release_state(release_shapes(98, int(mask.sum()), "BaseGCNPredictor", feat=2), seed=5)
    config = load_config(REPO / "experiments/WLFW/config_resnet.yaml",
                         overrides=["structure.gcn_param.edge_weights=dynamic", "structure.crop_size=64"])
    model = build_model(config)
    model.load_state_dict(convert_release_state_dict(state, config), strict=True)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = release_forward(images, state, "BaseGCNPredictor", 98, mask)
        assert (model.eval()(images).reshape(2, -1) - expected).abs().max().item() < 1e-4


def test_save_and_reload_roundtrip_keeps_outputs(tmp_path: Path) -> None:
    config = load_config(REPO / "experiments/COFW/config_resnet.yaml", overrides=["structure.crop_size=64"])
    model = build_model(config).eval()
    path = tmp_path / "ckpt.pth"
    save_checkpoint(path, {"epoch": 1, "optimizer": None, "state_dict": model.state_dict(), "config": config,
                           "scheme": model.scheme.to_dict(), "scheduler": None, "rng": None,
                           "lgrn_version": "0", "best_nme": None})
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(load_model(path)(images), model(images))


def test_convert_checkpoint_file_and_cli_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path, state, _ = _release_checkpoint(tmp_path)
    config = load_config(REPO / "experiments/WLFW/config_resnet.yaml", overrides=["structure.crop_size=64"])
    result = convert_checkpoint_file(path, config, lgrn_version="9.9")
    assert result.dropped == ["module.backbone.fc.weight", "module.backbone.fc.bias"]
    assert result.num_tensors == len(state) - 2 == len(result.checkpoint["state_dict"])
    assert result.checkpoint["lgrn_version"] == "9.9" and result.checkpoint["epoch"] == 42
    assert result.checkpoint["scheme"]["name"] == "wflw98" and result.checkpoint["config"] is config
    # An lgrn checkpoint needs no conversion: refused by name, before anything is written.
    lgrn_file = tmp_path / "lgrn.pth"
    save_checkpoint(lgrn_file, result.checkpoint)
    with pytest.raises(ValueError, match="not in the authors' layout"):
        convert_checkpoint_file(lgrn_file, config, lgrn_version="9.9")
    config_path = tmp_path / "config.yaml"
    config_path.write_text((REPO / "experiments/WLFW/config_resnet.yaml").read_text().replace("crop_size: 256",
                                                                                              "crop_size: 64"))
    out = tmp_path / "out.pth"
    assert convert_main([str(path), str(out), "--config", str(config_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"converted {len(state) - 2} tensors from {path} (dropped unused "
                              "['module.backbone.fc.weight', 'module.backbone.fc.bias']) -> ")
    assert printed.rstrip().endswith(f"{out} [BaseGCNPredictor, 98 landmarks]")
    assert load_checkpoint(out)["lgrn_version"] == lgrn.__version__
    assert convert_main([str(lgrn_file), str(tmp_path / "y.pth"), "--config", str(config_path)]) == 1
    assert "lgrn convert-checkpoint: error: " in capsys.readouterr().err and not (tmp_path / "y.pth").exists()
