"""Backbones, graph layers, heads and build_model: exact parameter counts (docs/models.md), the
release's initialisation and BN momenta, edge-softmax properties, hand-computed graph convolution,
gradients reaching every parameter, shapes for every scheme and input size, dynamic edge weights,
torchvision-format weight loading and the MAC budget of the light backbone."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lgrn.config import load_config
from lgrn.landmarks import adjacency_pattern, get_scheme
from lgrn.models import (BACKBONE_ALIASES, BACKBONES, HEADS, EdgeSoftmax, GraphHead, MobileNetV2, SemGraphConv,
                         build_head, build_model, build_resnet, canonical_backbone_name, count_macs, count_parameters,
                         scheme_for_structure)

REPO = Path(__file__).resolve().parents[1]
WFLW = REPO / "experiments/WLFW/config_resnet.yaml"


def config(path: Path = WFLW, *overrides: str) -> dict:
    return load_config(path, overrides=list(overrides))


@pytest.mark.parametrize("path, expected", [
    ("experiments/WLFW/config_resnet.yaml", 23_705_782),
    ("experiments/WLFW/config_resnet_fc.yaml", 29_723_908),
    ("experiments/300W/config_resnet.yaml", 23_426_902),
    ("experiments/COFW/config_resnet.yaml", 23_065_680),
])
def test_exact_parameter_counts(path: str, expected: int) -> None:
    model = build_model(config(REPO / path))
    assert count_parameters(model) == expected
    assert count_parameters(model.backbone) == 21_284_672  # ResNet-34 trunk without the unused fc


def test_every_shipped_config_builds() -> None:
    paths = sorted(REPO.glob("experiments/*/*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        model = build_model(load_config(path))
        assert model.num_landmarks == model.config["structure"]["num_kpts"], path


def test_backbone_init_and_bn_momenta() -> None:
    backbone = build_resnet("resnet34")
    assert backbone.bn1.momentum == 0.01
    for name, module in backbone.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.momentum == (0.01 if name.endswith("downsample.1") or name == "bn1" else 0.1), name
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
    assert sum(1 for n, _ in backbone.named_modules() if n.endswith("downsample.1")) == 3
    weight = backbone.layer4[1].conv2.weight  # 512 x 512 x 3 x 3: Kaiming fan_out std = sqrt(2 / (512 * 9))
    assert abs(weight.std().item() / math.sqrt(2 / (512 * 9)) - 1) < 0.01
    assert abs(weight.mean().item()) < 1e-3
    stem = backbone.conv1.weight  # fan_out = 64 * 7 * 7
    assert abs(stem.std().item() / math.sqrt(2 / (64 * 49)) - 1) < 0.05
    assert not hasattr(backbone, "fc") and not hasattr(backbone, "avgpool")


def test_graph_layer_init_as_released() -> None:
    torch.manual_seed(0)
    layer = SemGraphConv(256, 128, np.eye(4, dtype=bool) | np.eye(4, k=1, dtype=bool))
    bound = 1.414 * math.sqrt(6 / (256 * 128 + 2 * 128))  # xavier gain 1.414, 3-D fans
    assert layer.weight.shape == (2, 256, 128)
    assert layer.weight.abs().max() <= bound
    assert abs(layer.weight.std().item() / (bound / math.sqrt(3)) - 1) < 0.01
    assert layer.bias.abs().max() <= 1 / math.sqrt(128) and layer.bias.abs().max() > 0.5 / math.sqrt(128)
    assert layer.edge_logits.shape == (1, 7) and torch.all(layer.edge_logits == 1)


def test_backbone_stage_shapes_and_names() -> None:
    images = torch.randn(1, 3, 64, 96)
    for name, channels in (("resnet18", (64, 128, 256, 512)), ("resnet50", (256, 512, 1024, 2048))):
        backbone = build_resnet(name).eval()
        outs = backbone(images)
        assert [tuple(o.shape) for o in outs] == [(1, c, 64 // s, 96 // s) for c, s in zip(channels, (4, 8, 16, 32))]
        assert backbone.out_channels == channels
    outs = MobileNetV2().eval()(images)
    assert [tuple(o.shape[1:]) for o in outs] == [(24, 16, 24), (32, 8, 12), (96, 4, 6), (1280, 2, 3)]
    keys = set(build_resnet("resnet50").state_dict())
    assert {"conv1.weight", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight", "layer4.2.bn3.running_var"} <= keys
    with pytest.raises(ValueError, match="IBN-a"):
        build_model(config(WFLW, "structure.backbone_name=ResNet34"))
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'"):
        build_model(config(WFLW, "structure.backbone_name=vgg16"))
    assert build_model(config(WFLW, "structure.backbone_name=RESNET18")).backbone.layer1[1].conv1 is not None


def test_edge_softmax_rows_uniform_at_init_and_zero_outside_pattern() -> None:
    scheme = get_scheme("wflw98")
    pattern = adjacency_pattern(scheme.gcn_edges(3), 98)
    assert pattern.sum() == 470
    layer = SemGraphConv(8, 4, pattern)
    weights = layer.adjacency()[0]
    degree_plus_one = torch.from_numpy(pattern.sum(1)).float()
    expected = torch.from_numpy(pattern).float() / degree_plus_one[:, None]
    assert torch.allclose(weights, expected, atol=1e-7)
    assert torch.allclose(weights.sum(1), torch.ones(98), atol=1e-6)
    with torch.no_grad():
        layer.edge_logits.normal_(0, 3)
    weights = layer.adjacency()[0]
    assert torch.all(weights[~torch.from_numpy(pattern)] == 0)
    assert torch.allclose(weights.sum(1), torch.ones(98), atol=1e-6)
    assert weights.std() > expected.std() * 0.1 and not torch.allclose(weights, expected)


def test_edge_softmax_hand_computed() -> None:
    # Pattern (row-major non-zeros): (0,0) (0,1) (1,0) (1,1) (1,2) (2,1) (2,2); logits 0..6.
    pattern = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    softmax = EdgeSoftmax(pattern)
    assert softmax.positions.tolist() == [0, 1, 3, 4, 5, 7, 8]
    weights = softmax(torch.arange(7.0).reshape(1, 7))[0]
    row1 = np.exp([2.0, 3.0, 4.0]) / np.exp([2.0, 3.0, 4.0]).sum()
    expected = np.array([[np.exp(0) / (np.exp(0) + np.exp(1)), np.exp(1) / (np.exp(0) + np.exp(1)), 0],
                         [row1[0], row1[1], row1[2]],
                         [0, np.exp(5) / (np.exp(5) + np.exp(6)), np.exp(6) / (np.exp(5) + np.exp(6))]])
    assert np.allclose(weights.numpy(), expected, atol=1e-6)


def test_sem_graph_conv_hand_computed() -> None:
    # Path graph 0-1-2 with uniform edges: y_i = W0^T x_i / (deg+1) + sum_j W1^T x_j / (deg+1) + b.
    pattern = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    layer = SemGraphConv(2, 1, pattern)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[1.0], [0.0]], [[0.0], [10.0]]]))  # self: x[0]; neighbours: 10 * x[1]
        layer.bias.fill_(0.5)
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    y = layer(x)[0, :, 0]
    expected = [1 / 2 + 10 * 4 / 2 + 0.5, 3 / 3 + 10 * (2 + 6) / 3 + 0.5, 5 / 2 + 10 * 4 / 2 + 0.5]
    assert torch.allclose(y, torch.tensor(expected), atol=1e-5)


def _check_all_gradients(model: nn.Module, images: torch.Tensor, allowed_zero: tuple[str, ...] = ()) -> None:
    model.train()
    model.zero_grad()
    target = torch.rand(images.shape[0], model.num_landmarks, 2) * images.shape[-1]
    (model(images) - target).abs().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient"
        assert torch.isfinite(param.grad).all(), name
        if not name.startswith(allowed_zero):
            assert param.grad.abs().sum() > 0, f"{name}: zero gradient"


@pytest.mark.parametrize("size, overrides", [
    (64, ("structure.backbone_name=resnet18",)),
    (64, ("structure.backbone_name=resnet18", "structure.predictor_name=FCPredictor")),
    (32, ("structure.backbone_name=mobilenetv2",)),
    (32, ("structure.backbone_name=resnet50", "structure.gcn_param.p_dropout=0.1")),
])
def test_every_parameter_receives_a_gradient(size: int, overrides: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    model = build_model(config(WFLW, f"structure.crop_size={size}", *overrides))
    _check_all_gradients(model, torch.randn(3, 3, size, size))


def test_dynamic_edges_gradients_and_zero_start() -> None:
    torch.manual_seed(0)
    cfg = config(WFLW, "structure.crop_size=64", "structure.backbone_name=resnet18",
                 "structure.gcn_param.edge_weights=dynamic")
    model = build_model(cfg)
    images = torch.randn(3, 3, 64, 64)
    # The relation learner's last layer starts at zero (exactly the static model), so its first layer
    # has no gradient at the very first step; after one update every parameter gets a gradient.
    _check_all_gradients(model, images, allowed_zero=("head.relation.fc1.",))
    assert model.head.relation.fc2.weight.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    _check_all_gradients(model, images)


def test_dynamic_model_equals_static_at_init_and_varies_per_image() -> None:
    torch.manual_seed(0)
    overrides = ("structure.crop_size=64", "structure.backbone_name=resnet18")
    static = build_model(config(WFLW, *overrides)).eval()
    dynamic = build_model(config(WFLW, *overrides, "structure.gcn_param.edge_weights=dynamic")).eval()
    missing, unexpected = dynamic.load_state_dict(static.state_dict(), strict=False)
    assert all(k.startswith("head.relation.") for k in missing) and not unexpected
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(dynamic(images), static(images), atol=1e-5)
        dynamic.head.relation.fc2.weight.normal_(0, 0.5)
        logits = dynamic.head.edge_logits(dynamic.backbone(images)[-1])
        assert logits.shape == (2, 470)
        assert (logits[0] - logits[1]).abs().max() > 0.1  # different images -> different edge weights
        layer = dynamic.head.sem_gcn.gconv_output
        weights = layer.adjacency(logits)
        assert weights.shape == (2, 98, 98)
        assert torch.allclose(weights.sum(-1), torch.ones(2, 98), atol=1e-5)
        assert not torch.allclose(weights[0], weights[1], atol=1e-3)
        pattern = layer.edge_softmax.mask.bool()
        assert torch.all(weights[:, ~pattern] == 0)
        assert not torch.allclose(dynamic(images), static(images), atol=1e-3)


CUSTOM_SCHEME = """
name: five
num_landmarks: 5
flip_pairs: [[0, 1], [2, 3]]
inter_ocular: [0, 1]
graph: [[0, 1], [1, 4], [2, 3], [3, 4], [4, 0]]
"""


@pytest.mark.parametrize("predictor", ["BaseGCNPredictor", "FCPredictor"])
def test_output_shapes_for_every_scheme_and_size(tmp_path: Path, predictor: str) -> None:
    scheme_file = tmp_path / "five.yaml"
    scheme_file.write_text(CUSTOM_SCHEME)
    cases = [("experiments/WLFW/config_resnet.yaml", 98, ()), ("experiments/300W/config_resnet.yaml", 68, ()),
             ("experiments/COFW/config_resnet.yaml", 29, ()),
             ("experiments/WLFW/config_resnet.yaml", 5, ("common.num_kpts=5", f"structure.scheme={scheme_file}"))]
    for path, num_landmarks, extra in cases:
        for size in (128, 256):
            cfg = config(REPO / path, "structure.backbone_name=mobilenetv2", f"structure.crop_size={size}",
                         f"structure.predictor_name={predictor}", *extra)
            model = build_model(cfg).eval()
            with torch.no_grad():
                landmarks = model(torch.randn(1, 3, size, size))
            assert landmarks.shape == (1, num_landmarks, 2) and landmarks.dtype == torch.float32
            assert model.num_landmarks == num_landmarks and model.scheme.num_landmarks == num_landmarks
    with pytest.raises(ValueError, match=r"expected a backbone map \[B, 1280, 8, 8\] \(input 256x256"):
        model(torch.randn(1, 3, 128, 128))  # the last model was built for crop_size 256
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model(config(WFLW, "structure.crop_size=100"))


def test_grayscale_and_channels_last_bf16() -> None:
    torch.manual_seed(0)
    model = build_model(config(WFLW, "common.is_color=false", "structure.crop_size=64",
                               "structure.backbone_name=resnet18")).eval()
    assert model.backbone.conv1.in_channels == 1
    images = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        reference = model(images)
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(images.to(memory_format=torch.channels_last))
    assert low.dtype == torch.float32  # the coordinate layer runs in float32
    assert (low - reference).abs().max() < 0.05 * reference.abs().max() + 0.05


def _torchvision_file(tmp_path: Path, backbone: nn.Module, extra: dict) -> Path:
    state = dict(backbone.state_dict(), **extra)
    path = tmp_path / "resnet.pth"
    torch.save(state, path)
    return path


def test_torchvision_weights_roundtrip_and_errors(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = build_resnet("resnet18")
    with torch.no_grad():
        for tensor in source.state_dict().values():
            if tensor.is_floating_point():
                tensor.normal_()
    fc = {"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}
    path = _torchvision_file(tmp_path, source, fc)
    cfg = config(WFLW, "structure.backbone_name=resnet18", f"structure.pretrained_path={path}")
    loaded = build_model(cfg).backbone.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    bad = _torchvision_file(tmp_path, source, dict(fc, **{"layer9.0.conv1.weight": torch.zeros(1)}))
    with pytest.raises(ValueError, match=r"unexpected keys: \['layer9\.0\.conv1\.weight'\]"):
        build_model(cfg)  # same path, now overwritten with the bad file
    state = source.state_dict()
    del state["layer2.0.downsample.0.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing keys: \['layer2\.0\.downsample\.0\.weight'\]"):
        build_model(cfg)
    assert bad.exists()
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        build_model(config(WFLW, f"structure.pretrained_path={tmp_path / 'none.pth'}"))


def test_grayscale_stem_from_colour_weights(tmp_path: Path) -> None:
    source = build_resnet("resnet18")
    path = _torchvision_file(tmp_path, source, {})
    cfg = config(WFLW, "structure.backbone_name=resnet18", "common.is_color=false", f"structure.pretrained_path={path}")
    gray = build_model(cfg).backbone.eval()
    image = torch.randn(1, 1, 64, 64)
    with torch.no_grad():  # a gray image fed as 3 equal channels gives the same features
        assert torch.allclose(gray(image)[-1], source.eval()(image.expand(1, 3, 64, 64))[-1], atol=1e-4)


def test_mac_counter_and_light_backbone_budget() -> None:
    toy = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.Flatten(),
                        nn.Linear(8 * 10 * 10, 5))
    assert count_macs(toy, (1, 3, 10, 10)) == 8 * 100 * 27 + 8 * 100 * 2 * 9 + 5 * 800
    with torch.device("meta"):  # shapes only: the hooks need no real arithmetic
        resnet34 = count_macs(build_resnet("resnet34"), (1, 3, 256, 256))
        mobilenet = count_macs(MobileNetV2(), (1, 3, 256, 256))
    assert 4.6e9 < resnet34 < 4.9e9  # 3.6 GMAC at 224 x (256/224)^2
    assert mobilenet <= resnet34 / 4
    head = GraphHead(512, (8, 8), adjacency_pattern(get_scheme("wflw98").gcn_edges(3), 98))
    assert 0.15e9 < count_macs(head, (1, 512, 8, 8)) < 0.25e9  # ~0.18 GMAC (docs/models.md)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.export internals, not ours
def test_graph_head_exports_to_onnx() -> None:
    # Buffers + dense ops only: the dynamo exporter handles it and ONNX Runtime agrees, also for a
    # batch size other than the one traced (dynamic edge weights exercise the per-image scatter).
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    pattern = adjacency_pattern(np.array([[0, 1], [1, 2], [2, 3], [3, 4]]), 5)
    head = GraphHead(8, (2, 2), pattern, hid_dim=16, num_layers=1, edge_weights="dynamic").eval()
    with torch.no_grad():
        head.relation.fc2.weight.normal_()
    program = torch.onnx.export(head, (torch.randn(2, 8, 2, 2),), dynamo=True,
                                dynamic_shapes={"features": {0: "batch"}}, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    features = torch.randn(3, 8, 2, 2)
    (out,) = session.run(None, {session.get_inputs()[0].name: features.numpy()})
    with torch.no_grad():
        assert np.abs(out - head(features).numpy()).max() < 1e-5


# ----------------------------------------------------------------------------------------------
# The registries: a backbone or head is one factory in BACKBONES / HEADS (lgrn.models.registry).

class _TinyBackbone(nn.Module):
    """The smallest backbone that follows the contract of lgrn.models.registry."""

    stride = 32

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)   # the stem: first state-dict entry
        self.out_channels = (width, width, width, width)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv1(images)
        return [nn.functional.avg_pool2d(x, s) for s in (4, 8, 16, 32)]


def test_registry_names_and_aliases() -> None:
    assert list(BACKBONES) == ["resnet18", "resnet34", "resnet50", "mobilenetv2"]
    assert list(HEADS) == ["BaseGCNPredictor", "FCPredictor"]
    assert all(target in BACKBONES for target in BACKBONE_ALIASES.values())
    for name, canonical in (("ResNet34Pure", "resnet34"), ("resnet34pure", "resnet34"), ("RESNET18", "resnet18"),
                            ("resnet50", "resnet50"), ("MobileNetV2", "mobilenetv2"), ("mobilenet_v2", "mobilenetv2")):
        assert canonical_backbone_name(name) == canonical
    with pytest.raises(ValueError, match="unknown backbone 'vgg16'; expected one of ResNet34Pure, resnet18, "
                                         "resnet34, resnet50, mobilenetv2$"):
        canonical_backbone_name("vgg16")
    with pytest.raises(ValueError, match="IBN-a"):
        canonical_backbone_name("ResNet34")
    structure = dict(config(WFLW)["structure"], predictor_name="MLPPredictor")
    with pytest.raises(ValueError, match=r"unknown head 'MLPPredictor'; expected one of "
                                         r"\('BaseGCNPredictor', 'FCPredictor'\)"):
        build_head(structure, 512, get_scheme("wflw98"))


def test_a_new_backbone_is_one_registry_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKBONES, "tiny", lambda in_channels, structure: _TinyBackbone(in_channels, 16))
    assert canonical_backbone_name("Tiny") == "tiny"
    cfg = config(WFLW, "structure.backbone_name=Tiny", "structure.crop_size=64")
    model = build_model(cfg).eval()
    assert isinstance(model.backbone, _TinyBackbone) and model.head.in_channels == 16
    assert tuple(model(torch.randn(2, 3, 64, 64)).shape) == (2, 98, 2)
    # Pretrained handling comes with the contract: a torchvision-style file (classifier included) loads,
    # and a 3-channel stem is summed into a 1-channel one.
    weights = _TinyBackbone(3, 16).state_dict()
    path = tmp_path / "tiny.pth"
    torch.save({**weights, "fc.weight": torch.zeros(10, 16)}, path)
    gray = build_model(config(WFLW, "structure.backbone_name=tiny", "structure.crop_size=64",
                              "structure.is_color=false", f"structure.pretrained_path={path}"))
    assert torch.equal(gray.backbone.conv1.weight, weights["conv1.weight"].sum(dim=1, keepdim=True))


def test_build_model_takes_a_resolved_config_without_reading_the_config_layer() -> None:
    # build_model resolves the scheme from structure alone (lgrn.models.model does not import lgrn.config).
    cfg = config(REPO / "experiments/COFW/config_resnet.yaml", "structure.crop_size=64")
    assert scheme_for_structure(cfg["structure"]).name == build_model(cfg).scheme.name == "cofw29"
    with pytest.raises(ValueError, match="structure.scheme 'wflw98' has 98 landmarks but structure.num_kpts is 29"):
        scheme_for_structure(dict(cfg["structure"], scheme="wflw98"))
    with pytest.raises(ValueError, match="scheme 'wflw98' has 98 landmarks but structure.num_kpts is 29"):
        build_model(cfg, scheme=get_scheme("wflw98"))
