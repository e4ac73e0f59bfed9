"""The config loader: every shipped config loads (and builds its scheme and criterion), the release's
values survive, unknown keys and wrong types are errors naming the key and the file, and `--set`-style
overrides are validated."""
from __future__ import annotations

from pathlib import Path

import pytest

from lgrn.config import SCHEMA, ConfigError, apply_override, get_scheme_for_config, load_config, resolve_config
from lgrn.losses import build_criterion

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "experiments").glob("**/*.yaml"))


def test_configs_are_shipped():
    names = {p.relative_to(REPO / "experiments").as_posix() for p in SHIPPED}
    assert {"WLFW/config_resnet.yaml", "WLFW/config_resnet_fc.yaml", "300W/config_resnet.yaml",
            "COFW/config_resnet.yaml"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(REPO / "experiments").as_posix())
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert set(config) >= {"structure", "train_param", "test_param"}
    num_kpts = config["structure"]["num_kpts"]
    assert config["train_param"]["num_kpts"] == config["test_param"]["num_kpts"] == num_kpts
    scheme = get_scheme_for_config(config)
    assert scheme.num_landmarks == num_kpts
    criterion = build_criterion(config["train_param"], scheme)
    assert criterion.relative.laplacian.shape == (num_kpts, num_kpts)


def test_release_config_values_and_defaults():
    config = load_config(REPO / "experiments/WLFW/config_resnet.yaml")
    structure, train, test = config["structure"], config["train_param"], config["test_param"]
    assert structure["num_kpts"] == 98 and structure["crop_size"] == 256 and structure["is_color"] is True
    assert structure["gcn_param"]["top_k"] == 3 and structure["gcn_param"]["hid_dim"] == 128
    assert train["criterion"] == {"type": "WiderWing", "kwargs": {"curvature": 0.5}}
    assert train["optimizer"]["kwargs"] == {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005}
    assert train["scheduler"] == {"milestones": [200, 350], "gamma": 0.2, "epochs": 500,
                                  "release_early_decay": False}
    assert train["is_pdb"] == 9 and train["rotation"] == 40 and train["mirror"] is True
    assert train["interpolation"] == "nearest"  # the release's bug-as-feature is the default
    assert test["norm"] == "inter_ocular" and test["batch_size"] == 128
    fc = load_config(REPO / "experiments/WLFW/config_resnet_fc.yaml")
    assert fc["structure"]["predictor_name"] == "FCPredictor" and fc["structure"]["gcn_param"]["top_k"] is None


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = "common: &common\n  num_kpts: 29\nstructure:\n  <<: *common\ntrain_param:\n  <<: *common\n"


def test_unknown_keys_name_the_key_and_the_file(tmp_path):
    path = _write(tmp_path, BASE + "  batch_sise: 8\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml: unknown key 'train_param.batch_sise' \(known keys"):
        load_config(path)
    path = _write(tmp_path, BASE + "  criterion:\n    typ: Wing\n", "nested.yaml")
    with pytest.raises(ConfigError, match="nested.yaml: unknown key 'train_param.criterion.typ'"):
        load_config(path)
    path = _write(tmp_path, BASE + "extra_section: 1\n", "top.yaml")
    with pytest.raises(ConfigError, match="top.yaml: unknown top-level key 'extra_section'"):
        load_config(path)


def test_type_errors_name_the_key(tmp_path):
    cases = {"  batch_size: eight\n": r"'train_param.batch_size': must be int, got str \('eight'\)",
             "  batch_size: true\n": "'train_param.batch_size': must be int, got a boolean",
             "  workers: null\n": "'train_param.workers': must be int, got null",
             "  criterion: Wing\n": "'train_param.criterion' must be a mapping",
             "  scheduler:\n    milestones: 200\n": "'train_param.scheduler.milestones': must be list"}
    for i, (text, message) in enumerate(cases.items()):
        with pytest.raises(ConfigError, match=f"t{i}.yaml: {message}"):
            load_config(_write(tmp_path, BASE + text, f"t{i}.yaml"))
    # an int where a float is expected is fine (and converted)
    config = load_config(_write(tmp_path, BASE.replace("structure:\n", "structure:\n  width_mult: 1\n"), "ok.yaml"))
    assert config["structure"]["width_mult"] == 1.0 and isinstance(config["structure"]["width_mult"], float)


def test_structural_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'structure.num_kpts'"):
        load_config(_write(tmp_path, "structure:\n  crop_size: 256\n", "a.yaml"))
    with pytest.raises(ConfigError, match=r"'train_param.num_kpts' \(68\) differs from 'structure.num_kpts' \(29\)"):
        load_config(_write(tmp_path, "structure:\n  num_kpts: 29\ntrain_param:\n  num_kpts: 68\n"
                                     "test_param:\n  num_kpts: 29\n", "b.yaml"))
    with pytest.raises(ConfigError, match="'structure.predictor_name' must be one of"):
        load_config(_write(tmp_path, BASE.replace("structure:\n", "structure:\n  predictor_name: GCN\n"), "c.yaml"))
    with pytest.raises(ConfigError, match="d.yaml: invalid YAML"):
        load_config(_write(tmp_path, "structure: [\n", "d.yaml"))
    # safe_load: no Python object construction from a config
    with pytest.raises(ConfigError, match="e.yaml: invalid YAML"):
        load_config(_write(tmp_path, "structure: !!python/object/apply:os.system ['true']\n", "e.yaml"))
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_are_validated_and_applied(tmp_path):
    path = REPO / "experiments/WLFW/config_resnet.yaml"
    config = load_config(path, ["train_param.batch_size=8", "structure.gcn_param.hid_dim=64",
                                "train_param.criterion.kwargs.curvature=2", "train_param.optimizer.kwargs.lr=0.1",
                                "train_param.scheduler.milestones=[2, 4]", "train_param.amp=bf16"])
    train = config["train_param"]
    assert train["batch_size"] == 8 and config["structure"]["gcn_param"]["hid_dim"] == 64
    assert train["criterion"]["kwargs"] == {"curvature": 2} and train["amp"] == "bf16"
    assert train["optimizer"]["kwargs"] == {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0005}
    assert train["scheduler"]["milestones"] == [2, 4]
    with pytest.raises(ConfigError, match="unknown key 'train_param.batch_sise'"):
        load_config(path, ["train_param.batch_sise=8"])
    with pytest.raises(ConfigError, match="unknown key 'train_param.batch_size.x'"):
        load_config(path, ["train_param.batch_size.x=8"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["train_param.batch_size"])
    with pytest.raises(ConfigError, match=r"'train_param.batch_size': must be int, got str \('big'\)"):
        load_config(path, ["train_param.batch_size=big"])
    with pytest.raises(ConfigError, match="'train_param.amp' must be null, auto or bf16"):
        load_config(path, ["train_param.amp=fp8"])
    with pytest.raises(ConfigError, match="refine_300W: true' is not supported"):
        load_config(path, ["test_param.refine_300W=true"])
    with pytest.raises(ConfigError, match="'test_param.norm' must be one of"):
        load_config(path, ["test_param.norm=box"])


def test_common_override_reaches_every_section_and_free_form_defaults():
    raw = {"common": {"num_kpts": 98}}
    config = resolve_config(raw, overrides=["common.num_kpts=68", "train_param.optimizer.kwargs.momentum=0.5"])
    assert {config[s]["num_kpts"] for s in ("structure", "train_param", "test_param")} == {68}
    # a free-form mapping absent from the file starts from its default before the override
    assert config["train_param"]["optimizer"]["kwargs"] == {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.0005}
    apply_override(raw, "structure.scheme=cofw29")
    assert raw["structure"]["scheme"] == "cofw29"
    with pytest.raises(ConfigError, match="unknown key 'structure.sheme'"):
        apply_override(raw, "structure.sheme=cofw29")
    assert "sheme" not in raw["structure"]


def test_release_cli_keys_are_accepted_and_dropped():
    config = resolve_config({"common": {"num_kpts": 29}, "config": "x.yaml", "expname": "run", "train": True})
    assert "expname" not in config and config["structure"]["num_kpts"] == 29
    assert set(SCHEMA) == {"common", "structure", "train_param", "test_param"}


def test_scheme_for_config(tmp_path):
    config = resolve_config({"common": {"num_kpts": 68}})
    assert get_scheme_for_config(config).name == "300w68"
    config = resolve_config({"common": {"num_kpts": 68}}, overrides=["structure.scheme=cofw29"])
    with pytest.raises(ConfigError, match="'cofw29' has 29 landmarks but structure.num_kpts is 68"):
        get_scheme_for_config(config)
    scheme_file = tmp_path / "five.yaml"
    scheme_file.write_text("name: five\nnum_landmarks: 5\ninter_ocular: [0, 1]\ngraph: [[0, 1], [1, 2]]\n")
    config = resolve_config({"common": {"num_kpts": 5}}, overrides=[f"structure.scheme={scheme_file}"])
    assert get_scheme_for_config(config).name == "five"


def test_ranges_duplicates_and_bad_overrides_are_named(tmp_path, repo_root):
    """Values that would crash later or train nonsense are refused up front, naming the file and the key."""
    tiny = repo_root / "experiments" / "synthetic" / "tiny.yaml"
    cases = {"train_param.snapshot_freq=0": "'train_param.snapshot_freq' must be >= 1, got 0",
             "train_param.print_freq=0": "'train_param.print_freq' must be >= 1, got 0",
             "structure.gcn_param.hid_dim=0": "'structure.gcn_param.hid_dim' must be >= 1, got 0",
             "train_param.scheduler.epochs=0": "'train_param.scheduler.epochs' must be >= 1, got 0",
             "train_param.scheduler.epochs=-5": "'train_param.scheduler.epochs' must be >= 1, got -5",
             "train_param.scheduler.gamma=-0.1": "'train_param.scheduler.gamma' must be > 0, got -0.1",
             "train_param.max_iters_per_epoch=0": "'train_param.max_iters_per_epoch' must be >= 1, got 0",
             "structure.gcn_param.num_layers=-1": "'structure.gcn_param.num_layers' must be >= 0, got -1",
             "train_param.translate_rate=10": "'train_param.translate_rate' must be >= 0 and <= 0.5, got 10",
             "train_param.validation.fraction=1": "'train_param.validation.fraction' must be >= 0 and < 1, got 1",
             "common.crop_size=100": "'structure.crop_size' must be a multiple of 32",
             "train_param.scale_min=1.2": "'train_param.scale_min' \\(1.2\\) is above 'train_param.scale_max'",
             "train_param.scheduler.milestones=[2.5]": "'train_param.scheduler.milestones' must be epochs"}
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=f"tiny.yaml: {message}"):
            load_config(tiny, overrides=[override])
    with pytest.raises(ConfigError, match=r"override 'train_param.seed=\[1,': the value is not valid YAML"):
        load_config(tiny, overrides=["train_param.seed=[1,"])
    duplicated = _write(tmp_path, BASE + "  batch_size: 8\n  batch_size: 16\n", "dup.yaml")
    with pytest.raises(ConfigError, match="dup.yaml: invalid YAML: duplicate key 'batch_size' \\(first on line 7\\)"):
        load_config(duplicated)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(BASE.encode() + b"  # caf\xe9\n")
    with pytest.raises(ConfigError, match="latin.yaml: not UTF-8 text"):
        load_config(latin)


def test_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    path = _write(tmp_path, "structure:\n  num_kpts: 98\n  crop_size: [256\n", "syntax.yaml")
    with pytest.raises(ConfigError, match=r"(?s)syntax\.yaml: invalid YAML: .*line 3, column 14") as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")


def test_config_data_and_landmarks_import_lgrn_only_at_module_level(repo_root):
    """Layering rule: no function-level import of an lgrn module in lgrn.config, lgrn.data, lgrn.landmarks
    (circles are broken by the layout, not hidden in functions)."""
    import ast

    src = repo_root / "src" / "lgrn"
    files = [src / "config.py", *sorted((src / "data").rglob("*.py")), *sorted((src / "landmarks").rglob("*.py"))]
    offenders = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.level > 0 or (inner.module or "").startswith("lgrn")):
                    offenders.append(f"{path.relative_to(src)}:{inner.lineno}")
                elif isinstance(inner, ast.Import) and any(a.name.startswith("lgrn") for a in inner.names):
                    offenders.append(f"{path.relative_to(src)}:{inner.lineno}")
    assert offenders == []
