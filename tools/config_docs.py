"""Generate docs/configs.md from the config schema in ``lgrn.config`` (every key, its type, default and
meaning), so the page cannot drift from the code.

The schema (``lgrn.config.SCHEMA``, ``COMMON``, ``RANGES``) gives the keys, types, defaults and numeric
ranges; this file gives the one-line meaning of each key (``MEANINGS``) and marks the keys that lgrn adds
to the release's layout (``ADDED_BY_LGRN``). Generation fails when a schema key has no meaning, or when a
meaning names a key the schema no longer has.

    python tools/config_docs.py           # rewrite docs/configs.md
    python tools/config_docs.py --check   # exit 1 if docs/configs.md is out of date (tests/test_docs.py)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lgrn import config as schema_module
from lgrn.atomic import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "docs" / "configs.md"
SECTIONS = ("structure", "train_param", "test_param")

# Dotted key (without the section for the `common` keys) -> one-line meaning. Choices are listed here
# because lgrn.config checks them in code, not in the schema.
MEANINGS: dict[str, str] = {
    # common: merged into every section with `<<: *common`
    "num_kpts": "landmark count K; must be equal in all sections",
    "is_color": "true: 3-channel BGR input; false: grayscale, the stem takes 1 channel",
    "crop_size": "network input side in pixels, a multiple of 32 (the backbone's stride)",
    # structure
    "structure.backbone_name": "`ResNet34Pure` (release name) or `resnet34`, `resnet18`, `resnet50`, `mobilenetv2`",
    "structure.receptive_keep": "accepted and ignored, as released",
    "structure.predictor_name": "`BaseGCNPredictor` (the L-GRN graph head) or `FCPredictor` (the baseline)",
    "structure.pretrained_path": "local torchvision-format ImageNet weights (the release accepted the key and "
                                 "ignored it); null = from scratch",
    "structure.scheme": "built-in landmark scheme name or scheme file; null = the built-in scheme for `num_kpts`",
    "structure.gcn_param.top_k": "3 selects the graph `98pts_top3.txt` for 98 points; ignored for 68 and 29 points",
    "structure.gcn_param.hid_dim": "width of the graph layers (SemGCN)",
    "structure.gcn_param.num_layers": "residual blocks of two graph layers each",
    "structure.gcn_param.p_dropout": "dropout after each ReLU of the graph layers; null = none",
    "structure.gcn_param.edge_weights": "`static` (learned per layer, the release) or `dynamic` (predicted per "
                                        "image, the paper)",
    "structure.gcn_param.graph_file": "replace the scheme's GCN graph by an edge-list file (e.g. from `lgrn graph`)",
    "structure.width_mult": "MobileNetV2 width multiplier (light backbone only)",
    # train_param
    "train_param.batch_size": "batch per process (the DataLoader drops the last partial batch)",
    "train_param.workers": "DataLoader processes (persistent when above 0; results do not depend on their number)",
    "train_param.is_occluded": "random occluder: one rectangle of 20 % of the area with probability 0.5",
    "train_param.is_blurred": "random Gaussian or motion blur, each with probability 0.2",
    "train_param.task_weight": "weight of the absolute-position (task) loss term",
    "train_param.laplace_weight": "weight of the relative-location (graph Laplacian) loss term",
    "train_param.is_pdb": "pose-based data balancing with this many bins (`true` = 9; null or false = off; "
                          "0 is an error)",
    "train_param.pdb_mode": "`repeat` (the release), `capped` (repeat factor at most `pdb_cap`) or `sampler` "
                            "(weighted sampler)",
    "train_param.pdb_cap": "largest repeat factor with `pdb_mode: capped`",
    "train_param.criterion.type": "task loss: `WiderWing` (Soft Wing), `Wing`, `SmoothWing`, `L1`, `MSE`, "
                                  "`SmoothL1`, `L2`, `Euclidean`, `NME`, `NormalizedWiderWing`",
    "train_param.criterion.kwargs": "the loss's parameters (`thres1`, `thres2`, `curvature`, ...), checked by "
                                    "the loss builder",
    "train_param.optimizer.type": "any `torch.optim` class, on all parameters",
    "train_param.optimizer.kwargs": "the optimiser's arguments; overriding one keeps the other defaults",
    "train_param.scheduler.milestones": "MultiStepLR epochs at which the learning rate is multiplied by `gamma`",
    "train_param.scheduler.gamma": "learning-rate factor at each milestone",
    "train_param.scheduler.epochs": "number of training epochs",
    "train_param.scheduler.release_early_decay": "true: decay one epoch early, as the released code does on "
                                                 "modern PyTorch",
    "train_param.scale_min": "smallest random zoom; the test zoom is the mean of `scale_min` and `scale_max`",
    "train_param.scale_max": "largest random zoom",
    "train_param.mirror": "horizontal flip with probability 0.5 (with the scheme's flip permutation)",
    "train_param.rotation": "random rotation within plus or minus this many degrees",
    "train_param.translate_rate": "random shift within plus or minus this fraction of the crop side",
    "train_param.interpolation": "`nearest` (what the release effectively does) or `bilinear`",
    "train_param.train_root": "training image folder(s), space-separated, paired with `train_source`",
    "train_param.train_source": "training list file(s) in the release format, space-separated",
    "train_param.dataset": "`list` (release-format lists) or `synthetic` (faces generated in memory)",
    "train_param.synthetic.num_images": "synthetic training faces (with `dataset: synthetic`)",
    "train_param.synthetic.seed": "seed of the synthetic training faces",
    "train_param.synthetic.occlusion_rate": "share of synthetic training faces with an occluder",
    "train_param.validation.fraction": "held-out share of the training faces that selects the best checkpoint "
                                       "(0 = the release's test-set rule)",
    "train_param.validation.root": "image folder of a separate validation list",
    "train_param.validation.source": "a separate validation list (instead of `fraction`)",
    "train_param.print_freq": "log every N iterations",
    "train_param.snapshot_freq": "evaluate and write a checkpoint every N epochs (and after the last one)",
    "train_param.seed": "random seed; null = a random seed, logged and stored in the checkpoint",
    "train_param.device": "`auto` (CUDA when available), `cpu` or `cuda`",
    "train_param.amp": "null (float32), `auto` (bf16 only where the CPU or GPU has native bf16) or `bf16` autocast",
    "train_param.channels_last": "NHWC memory layout for the convolutions",
    "train_param.compile": "`torch.compile` the training model (needs a C++ compiler on CPU)",
    "train_param.cache": "decode the training images once into a uint8 memory-mapped file",
    "train_param.cache_dir": "where that cache lives; null = `$LGRN_CACHE_DIR`, else `.lgrn_cache/` beside the "
                             "first training list",
    "train_param.augment_on": "`cpu` (per image in DataLoader workers) or `gpu` (batched on the training device)",
    "train_param.max_iters_per_epoch": "cap the steps per epoch (smoke tests, benchmarks); null = full epochs",
    # test_param
    "test_param.batch_size": "evaluation batch",
    "test_param.workers": "evaluation DataLoader processes",
    "test_param.val_root": "test image folder(s), space-separated, paired with `val_source`",
    "test_param.val_source": "test list file(s) in the release format",
    "test_param.attr_source": "subset flags file; null = `<val_source stem>_attr.txt` if it exists",
    "test_param.norm": "normalisation of the report's headline numbers: `inter_ocular` or `inter_pupil` (both "
                       "means are always listed; `nme.txt` keeps the per-image inter-ocular NME)",
    "test_param.refine_300W": "only false: true is a config error, the release's clamp is broken "
                              "([deviations](deviations.md))",
    "test_param.dataset": "`list` or `synthetic`",
    "test_param.synthetic.num_images": "synthetic test faces (with `dataset: synthetic`)",
    "test_param.synthetic.seed": "seed of the synthetic test faces",
    "test_param.synthetic.occlusion_rate": "share of synthetic test faces with an occluder",
}

# Keys the release's code does not know; each has a default that reproduces the release.
ADDED_BY_LGRN = {
    "structure.scheme", "structure.gcn_param.edge_weights", "structure.gcn_param.graph_file",
    "structure.width_mult", "train_param.pdb_mode", "train_param.pdb_cap",
    "train_param.scheduler.release_early_decay", "train_param.interpolation", "train_param.dataset",
    "train_param.synthetic", "train_param.validation", "train_param.seed", "train_param.device",
    "train_param.amp", "train_param.channels_last", "train_param.compile", "train_param.cache",
    "train_param.cache_dir", "train_param.augment_on", "train_param.max_iters_per_epoch",
    "test_param.attr_source", "test_param.dataset", "test_param.synthetic", "test_param.norm",
}

HEADER = """\
# Config keys

<!-- Generated by `python tools/config_docs.py` from `lgrn.config.SCHEMA`; do not edit by hand. -->

Configs use the release's YAML layout: a `common` anchor (`num_kpts`, `is_color`, `crop_size`) is merged
with `<<: *common` into `structure`, `train_param` and `test_param`. A file is read with a safe YAML
loader that refuses duplicate keys, validated against `lgrn.config.SCHEMA` and completed with the
defaults below; `lgrn.load_config(path, overrides)` returns a plain nested dict.

- An unknown key, a wrong type, a value out of range, an invalid choice, or a `num_kpts` that differs
  between sections is an error that names the file and the full key, for example
  `experiments/WLFW/x.yaml: unknown key 'train_param.batch_sise' (known keys in 'train_param': ...)`,
  `experiments/WLFW/x.yaml: 'train_param.batch_size': must be int, got str ('eight')` or
  `experiments/WLFW/x.yaml: 'train_param.interpolation' must be one of ('nearest', 'bilinear'), got 'cubic'`.
- `--set section.key=value` overrides (dotted key, YAML value, repeatable) are checked against the schema
  before they are applied: `override 'train_param.lr=0.1': unknown key 'train_param.lr'`.
  `--set common.crop_size=128` changes all three sections.
- Sub-keys of the free-form mappings `train_param.criterion.kwargs` and `train_param.optimizer.kwargs`
  are accepted and checked by the builder that uses them.
- A section missing from the file inherits `common`. The release's command-line keys (`config`,
  `expname`, `train`, ...) are accepted at the top level and dropped. Data paths are relative to the
  working directory, as in the release.
- The "lgrn" column marks keys the release does not have; each has a default that reproduces the
  release ([deviations](deviations.md)). A release key missing from a file gets the default shown; the
  shipped configs set all of the release's keys explicitly.

Shipped configs (every one is loaded by `tests/test_config.py`):

| file | what |
|---|---|
| `experiments/WLFW/config_resnet.yaml`, `config_resnet_fc.yaml` | the authors' two configs, same keys and values (L-GRN and the FC baseline) |
| `experiments/300W/config_resnet*.yaml`, `experiments/COFW/config_resnet*.yaml` | the same recipe for 68 and 29 points |
| `experiments/300W/config_mobilenet.yaml`, `config_mobilenet_fc.yaml`, `config_mobilenet_finetune.yaml` | MobileNetV2 at 128 px on 300-W with a validation split: the measured L-GRN vs FC comparison and the shipped model's second stage ([results](results.md)) |
| `experiments/synthetic/demo_lgrn.yaml`, `demo_fc.yaml` | the demo: MobileNetV2 at 128 px, synthetic faces, 5 epochs, validation split |
| `experiments/synthetic/tiny.yaml` | seconds-long smoke runs and tests |
"""


def _type_name(types: tuple) -> str:
    names = []
    for t in types:
        name = {None: "null", dict: "mapping", list: "list", bool: "bool", int: "int", float: "float",
                str: "string"}.get(t, getattr(t, "__name__", str(t)))
        names.append(name)
    if "int" in names and "float" in names:
        names = ["number"] + [n for n in names if n not in ("int", "float")]
    return " or ".join(names)


def _value(value: Any) -> str:
    if value is schema_module._REQUIRED:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _range(path: tuple[str, ...]) -> str:
    spec = schema_module.RANGES.get(path)
    if spec is None:
        return ""
    low, high, low_ok, high_ok = spec
    parts = []
    if low is not None:
        parts.append(f"{'≥' if low_ok else '>'} {low}")
    if high is not None:
        parts.append(f"{'≤' if high_ok else '<'} {high}")
    return " and ".join(parts)


def _rows(schema: dict, prefix: tuple[str, ...]) -> list[tuple[str, dict | tuple]]:
    rows = []
    for key, spec in schema.items():
        path = prefix + (key,)
        if isinstance(spec, dict):
            rows.extend(_rows(spec, path))
        else:
            rows.append((".".join(path), spec))
    return rows


def _meaning_key(dotted: str) -> str:
    section, _, rest = dotted.partition(".")
    return rest if section in SECTIONS + ("common",) and rest in schema_module.COMMON else dotted


def _added(dotted: str) -> bool:
    parts = dotted.split(".")
    return any(".".join(parts[:i]) in ADDED_BY_LGRN for i in range(1, len(parts) + 1))


def _table(rows: list[tuple[str, tuple]]) -> list[str]:
    lines = ["| key | type | default | lgrn | meaning |", "|---|---|---|---|---|"]
    for dotted, (types, default) in rows:
        section, shown = dotted.split(".", 1)
        meaning = MEANINGS[_meaning_key(dotted)]
        # the common keys' ranges are stated once, under structure (the sections must agree anyway)
        allowed = _range(("structure" if section == "common" else section,) + tuple(shown.split(".")))
        if allowed:
            meaning += f" ({allowed})"
        lines.append(f"| `{shown}` | {_type_name(types)} | {_value(default)} | {'✓' if _added(dotted) else ''} "
                     f"| {meaning} |")
    return lines


def missing_meanings() -> list[str]:
    """Schema keys without an entry in MEANINGS (generation refuses to run while this is not empty)."""
    keys = {_meaning_key(dotted) for dotted, _ in _rows(schema_module.SCHEMA, ())}
    return sorted(keys - set(MEANINGS))


def stale_meanings() -> list[str]:
    """Entries of MEANINGS whose key the schema no longer has."""
    keys = {_meaning_key(dotted) for dotted, _ in _rows(schema_module.SCHEMA, ())}
    return sorted(set(MEANINGS) - keys)


def render() -> str:
    """The full text of docs/configs.md. Raises ValueError when a key has no meaning or a meaning is stale."""
    missing, stale = missing_meanings(), stale_meanings()
    if missing or stale:
        raise ValueError(f"tools/config_docs.py MEANINGS: no meaning for {missing}; stale entries {stale}")
    lines = [HEADER]
    lines.append("## `common` (merged into every section)\n")
    common_rows = [(f"common.{k}", v) for k, v in schema_module.COMMON.items()]
    lines += _table(common_rows)
    lines.append("")
    for section in SECTIONS:
        lines.append(f"## `{section}`\n")
        rows = [(dotted, spec) for dotted, spec in _rows(schema_module.SCHEMA[section], (section,))
                if dotted.split(".", 1)[1] not in schema_module.COMMON]
        lines += _table(rows)
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate docs/configs.md from lgrn.config.SCHEMA.")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configs.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python tools/config_docs.py", file=sys.stderr)
            return 1
        return 0
    write_text_atomic(OUTPUT, text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
