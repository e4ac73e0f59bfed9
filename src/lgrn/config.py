"""Configuration: the release's YAML layout (``common`` anchor merged into ``structure`` /
``train_param`` / ``test_param``) read with ``yaml.safe_load``, validated against a schema with
defaults, unknown keys rejected with the key and the file named.

Every key lgrn adds beyond the release has a default that reproduces the release, so the authors'
configs load unchanged and mean what they meant. The resolved config is a plain nested dict.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .landmarks import Scheme, get_scheme, scheme_for_num_landmarks

NUM = (int, float)
_REQUIRED = object()

# key -> (accepted types, default). A nested dict value is a sub-schema. ``None`` in the types
# means the key may be null. Defaults reproduce the release (docs/configs.md lists every key;
# docs/deviations.md says where lgrn differs).
COMMON = {
    "num_kpts": ((int,), _REQUIRED),
    "is_color": ((bool,), True),
    "crop_size": ((int,), 256),
}

SCHEMA: dict[str, Any] = {
    "common": dict(COMMON),
    "structure": {
        **COMMON,
        "backbone_name": ((str,), "ResNet34Pure"),
        "receptive_keep": ((bool,), False),          # accepted and ignored, as released
        "predictor_name": ((str,), "BaseGCNPredictor"),
        "pretrained_path": ((str, None), None),       # local torchvision-format ResNet state dict
        "scheme": ((str, None), None),                # built-in name or scheme file; None = from num_kpts
        "gcn_param": {
            "top_k": ((int, None), None),
            "hid_dim": ((int,), 128),
            "num_layers": ((int,), 4),
            "p_dropout": ((float, None), None),
            "edge_weights": ((str,), "static"),       # static (release) | dynamic (paper, §2.8)
            "graph_file": ((str, None), None),        # override the scheme's GCN graph with an edge list
        },
        "width_mult": ((float,), 1.0),                # light backbone only
    },
    "train_param": {
        **COMMON,
        "batch_size": ((int,), 64),
        "workers": ((int,), 4),
        "is_occluded": ((bool,), False),
        "is_blurred": ((bool,), False),
        "task_weight": (NUM, 1.0),
        "laplace_weight": (NUM, 1.0),
        "is_pdb": ((int, bool, None), None),          # presence turns PDB on; value = number of bins
        "pdb_mode": ((str,), "repeat"),               # repeat (release) | capped | sampler
        "pdb_cap": ((int,), 10),                      # max repeat factor for pdb_mode: capped
        "criterion": {
            "type": ((str,), "WiderWing"),
            "kwargs": ((dict,), {}),
        },
        "optimizer": {
            "type": ((str,), "SGD"),
            "kwargs": ((dict,), {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005}),
        },
        "scheduler": {
            "milestones": ((list,), [200, 350]),
            "gamma": (NUM, 0.2),
            "epochs": ((int,), 500),
            "release_early_decay": ((bool,), False),  # True: decay one epoch early, as released on modern torch
        },
        "scale_min": (NUM, 0.9314),
        "scale_max": (NUM, 1.0686),
        "mirror": ((bool,), False),
        "rotation": (NUM, 0.0),
        "translate_rate": (NUM, 0.0),
        "interpolation": ((str,), "nearest"),         # nearest (release bug-as-feature) | bilinear
        "train_root": ((str, None), None),
        "train_source": ((str, None), None),
        "dataset": ((str,), "list"),                  # list (release format) | synthetic
        "synthetic": {
            "num_images": ((int,), 2000),
            "seed": ((int,), 0),
            "occlusion_rate": (NUM, 0.3),
        },
        "validation": {
            "fraction": (NUM, 0.0),                   # hold out this fraction of train for best-checkpoint selection
            "root": ((str, None), None),
            "source": ((str, None), None),
        },
        "print_freq": ((int,), 30),
        "snapshot_freq": ((int,), 2),
        "seed": ((int, None), None),
        "device": ((str,), "auto"),                   # auto | cpu | cuda
        "amp": ((str, None), None),                   # None (fp32) | auto (bf16 where native) | bf16
        "channels_last": ((bool,), False),
        "compile": ((bool,), False),
        "cache": ((bool,), False),                    # decoded uint8 memmap cache of the training images
        "cache_dir": ((str, None), None),             # where the cache lives; None = $LGRN_CACHE_DIR or .lgrn_cache
        "augment_on": ((str,), "cpu"),                # cpu | gpu
        "max_iters_per_epoch": ((int, None), None),   # cap (tests, benchmarks); None = full epochs
    },
    "test_param": {
        **COMMON,
        "batch_size": ((int,), 128),
        "workers": ((int,), 4),
        "val_root": ((str, None), None),
        "val_source": ((str, None), None),
        "attr_source": ((str, None), None),           # subset flags file; None = <val_source stem>_attr.txt if present
        "norm": ((str,), "inter_ocular"),
        "refine_300W": ((bool,), False),
        "dataset": ((str,), "list"),
        "synthetic": {
            "num_images": ((int,), 300),
            "seed": ((int,), 1),
            "occlusion_rate": (NUM, 0.3),
        },
    },
}

# Keys the release copies from the command line into the config (main.py); kept for compatibility.
CLI_KEYS = ("config", "load_path", "resume", "expname", "visualize", "train", "evaluate", "eval_ckpts")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the key."""


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no Python objects) that refuses a key repeated in one mapping: plain YAML keeps
    the last value silently, which hides typos and merge mistakes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":        # '<<: *common' may repeat keys on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _type_name(types: tuple) -> str:
    return " or ".join("null" if t is None else t.__name__ for t in types)


def _check_value(value: Any, types: tuple, where: str) -> Any:
    if value is None:
        if None in types:
            return None
        raise ConfigError(f"{where}: must be {_type_name(types)}, got null")
    if isinstance(value, bool) and bool not in types:
        raise ConfigError(f"{where}: must be {_type_name(types)}, got a boolean ({value})")
    concrete = tuple(t for t in types if t is not None)
    if float in concrete and isinstance(value, int) and not isinstance(value, bool):
        return value if int in concrete else float(value)
    if not isinstance(value, concrete):
        raise ConfigError(f"{where}: must be {_type_name(types)}, got {type(value).__name__} ({value!r})")
    return value


def _validate(data: Any, schema: dict, where: str, source: str) -> dict:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(data).__name__}")
    out: dict[str, Any] = {}
    for key in data:
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise ConfigError(f"{source}: unknown key '{where}.{key}' (known keys in '{where}': {known})")
    for key, spec in schema.items():
        name = f"{where}.{key}"
        if isinstance(spec, dict):
            out[key] = _validate(data.get(key), spec, name, source)
            continue
        types, default = spec
        if key in data:
            out[key] = _check_value(data[key], types, f"{source}: '{name}'")
        elif default is _REQUIRED:
            raise ConfigError(f"{source}: missing required key '{name}'")
        else:
            out[key] = copy.deepcopy(default)
    return out


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (e.g. train_param.batch_size=32)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.load(raw, Loader=UniqueKeyLoader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({str(exc).splitlines()[0]})") from None
    return key.strip().split("."), value


def apply_override(raw: dict, text: str) -> None:
    """Apply ``section.key[.sub]=value`` (value parsed as YAML) to a raw config dict, checking the
    key against the schema first so a typo is an error, not a silently ignored setting."""
    keys, value = _parse_override(text)
    schema: Any = SCHEMA
    free_form = None  # index of the key holding a free-form mapping (criterion.kwargs, optimizer.kwargs)
    for i, key in enumerate(keys):
        if isinstance(schema, tuple) and dict in schema[0]:
            free_form = i - 1
            break  # any sub-key of a free-form mapping is accepted (the builder validates it)
        if not isinstance(schema, dict) or key not in schema:
            raise ConfigError(f"override {text!r}: unknown key '{'.'.join(keys[:i + 1])}'")
        schema = schema[key]
    node = raw
    for i, key in enumerate(keys[:-1]):
        if not isinstance(node.get(key), dict):
            # A free-form mapping absent from the file starts from its default, so overriding
            # optimizer.kwargs.lr keeps the default momentum and weight decay.
            node[key] = copy.deepcopy(schema[1]) if i == free_form else {}
        node = node[key]
    node[keys[-1]] = value
    # An override of a common key applies to every section that merged it.
    if keys[0] == "common" and len(keys) == 2:
        for section in ("structure", "train_param", "test_param"):
            raw.setdefault(section, {})[keys[1]] = value


def resolve_config(raw: dict, source: str = "<config>", overrides: list[str] | None = None) -> dict:
    """Validate a raw (already YAML-merged) dict and fill defaults."""
    raw = copy.deepcopy(raw) if raw is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a config must be a mapping")
    for key in CLI_KEYS:
        raw.pop(key, None)
    # Sections absent from the file inherit ``common`` before overrides, so an override that creates
    # the section (e.g. train_param.seed=1) does not lose num_kpts.
    for section in ("structure", "train_param", "test_param"):
        if section not in raw and isinstance(raw.get("common"), dict):
            raw[section] = dict(raw["common"])
    for text in overrides or []:
        apply_override(raw, text)
    if "structure" not in raw:
        raise ConfigError(f"{source}: missing section 'structure'")
    config = {}
    for key in raw:
        if key not in SCHEMA:
            raise ConfigError(f"{source}: unknown top-level key '{key}' (known: {', '.join(SCHEMA)})")
    for section, schema in SCHEMA.items():
        if section == "common" and "common" not in raw:
            continue
        config[section] = _validate(raw.get(section), schema, section, source)
    _check_choices(config, source)
    _check_ranges(config, source)
    return config


# (section, key path) -> (lowest, highest, lowest allowed itself?, highest allowed itself?); None = unbounded.
RANGES: dict[tuple[str, ...], tuple[float | None, float | None, bool, bool]] = {
    ("structure", "crop_size"): (32, None, True, True),
    ("structure", "num_kpts"): (1, None, True, True),
    ("structure", "gcn_param", "top_k"): (1, None, True, True),
    ("structure", "gcn_param", "hid_dim"): (1, None, True, True),
    ("structure", "gcn_param", "num_layers"): (0, None, True, True),
    ("structure", "gcn_param", "p_dropout"): (0, 1, True, False),
    ("structure", "width_mult"): (0, None, False, True),
    ("train_param", "batch_size"): (1, None, True, True),
    ("train_param", "workers"): (0, None, True, True),
    ("train_param", "task_weight"): (0, None, True, True),
    ("train_param", "laplace_weight"): (0, None, True, True),
    ("train_param", "pdb_cap"): (1, None, True, True),
    ("train_param", "scheduler", "gamma"): (0, None, False, True),
    ("train_param", "scheduler", "epochs"): (1, None, True, True),
    ("train_param", "scale_min"): (0, None, False, True),
    ("train_param", "scale_max"): (0, None, False, True),
    ("train_param", "rotation"): (0, 180, True, True),
    ("train_param", "translate_rate"): (0, 0.5, True, True),
    ("train_param", "synthetic", "num_images"): (1, None, True, True),
    ("train_param", "synthetic", "occlusion_rate"): (0, 1, True, True),
    ("train_param", "validation", "fraction"): (0, 1, True, False),
    ("train_param", "print_freq"): (1, None, True, True),
    ("train_param", "snapshot_freq"): (1, None, True, True),
    ("train_param", "max_iters_per_epoch"): (1, None, True, True),
    ("test_param", "batch_size"): (1, None, True, True),
    ("test_param", "workers"): (0, None, True, True),
    ("test_param", "synthetic", "num_images"): (1, None, True, True),
    ("test_param", "synthetic", "occlusion_rate"): (0, 1, True, True),
}


def _check_ranges(config: dict, source: str) -> None:
    for path, (low, high, low_ok, high_ok) in RANGES.items():
        value = config
        for key in path:
            value = value[key]
        if value is None:
            continue
        name = ".".join(path)
        below = low is not None and (value < low or (value == low and not low_ok))
        above = high is not None and (value > high or (value == high and not high_ok))
        if below or above:
            lo = "" if low is None else f"{'>=' if low_ok else '>'} {low}"
            hi = "" if high is None else f"{'<=' if high_ok else '<'} {high}"
            raise ConfigError(f"{source}: '{name}' must be {' and '.join(b for b in (lo, hi) if b)}, got {value!r}")
    tp = config["train_param"]
    if tp["scale_min"] > tp["scale_max"]:
        raise ConfigError(f"{source}: 'train_param.scale_min' ({tp['scale_min']}) is above 'train_param.scale_max' "
                          f"({tp['scale_max']})")
    if config["structure"]["crop_size"] % 32:
        raise ConfigError(f"{source}: 'structure.crop_size' must be a multiple of 32 (the backbone's stride), got "
                          f"{config['structure']['crop_size']}")
    milestones = tp["scheduler"]["milestones"]
    if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in milestones):
        raise ConfigError(f"{source}: 'train_param.scheduler.milestones' must be epochs (integers >= 0), got {milestones!r}")


def _check_choices(config: dict, source: str) -> None:
    choices = {
        ("structure", "predictor_name"): ("BaseGCNPredictor", "FCPredictor"),
        ("train_param", "interpolation"): ("nearest", "bilinear"),
        ("train_param", "pdb_mode"): ("repeat", "capped", "sampler"),
        ("train_param", "device"): ("auto", "cpu", "cuda"),
        ("train_param", "augment_on"): ("cpu", "gpu"),
        ("train_param", "dataset"): ("list", "synthetic"),
        ("test_param", "dataset"): ("list", "synthetic"),
        ("test_param", "norm"): ("inter_ocular", "inter_pupil"),
    }
    for (section, key), allowed in choices.items():
        if config[section][key] not in allowed:
            raise ConfigError(f"{source}: '{section}.{key}' must be one of {allowed}, got {config[section][key]!r}")
    if config["structure"]["gcn_param"]["edge_weights"] not in ("static", "dynamic"):
        raise ConfigError(f"{source}: 'structure.gcn_param.edge_weights' must be static or dynamic")
    if config["train_param"]["amp"] not in (None, "auto", "bf16"):
        raise ConfigError(f"{source}: 'train_param.amp' must be null, auto or bf16, got {config['train_param']['amp']!r}")
    if config["test_param"]["refine_300W"]:
        raise ConfigError(f"{source}: 'test_param.refine_300W: true' is not supported: the release's clamp to the "
                          "non-padded image region is broken (its lower bounds are overwritten, docs/deviations.md "
                          "release bug 16) and no shipped config enables it; leave it false")
    n = config["structure"]["num_kpts"]
    for section in ("train_param", "test_param"):
        if config[section]["num_kpts"] != n:
            raise ConfigError(f"{source}: '{section}.num_kpts' ({config[section]['num_kpts']}) differs from "
                              f"'structure.num_kpts' ({n})")


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read a YAML config (release layout) with ``yaml.safe_load``, apply ``key=value`` overrides,
    validate and fill defaults. Relative data paths are kept as written (relative to the working
    directory, like the release)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return resolve_config(raw, source=str(path), overrides=overrides)


def get_scheme_for_config(config: dict) -> Scheme:
    """The landmark scheme a config refers to (``structure.scheme`` or the built-in for num_kpts)."""
    structure = config["structure"]
    scheme = get_scheme(structure["scheme"]) if structure["scheme"] else scheme_for_num_landmarks(structure["num_kpts"])
    if scheme.num_landmarks != structure["num_kpts"]:
        raise ConfigError(f"structure.scheme {scheme.name!r} has {scheme.num_landmarks} landmarks but "
                          f"structure.num_kpts is {structure['num_kpts']}")
    return scheme
