"""Authors' checkpoints -> lgrn: ``convert_release_state_dict`` renames the release's state-dict keys
(``backbone.*``, ``predictor.map_to_node.*``, ``predictor.sem_gcn.*`` with ``W`` / ``e`` / ``bias``,
``predictor.fc1/fc2.*``; with or without DataParallel's ``module.`` prefix) to lgrn's model and
drops the backbone's unused ``fc``; ``lgrn convert-checkpoint IN OUT --config CFG`` writes a full
lgrn checkpoint. Edge logits need no reordering: both the release and lgrn lay them out in
row-major order of the adjacency pattern (release_state_dict_keys.md, L-GRN.md §2.4).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import torch

# (pattern, replacement) applied in order to each release key (after removing "module.").
_RENAMES = (
    (re.compile(r"^predictor\.sem_gcn\.gconv_input\.0\."), "head.sem_gcn.gconv_input."),
    (re.compile(r"^predictor\."), "head."),
    (re.compile(r"^(head\.sem_gcn\..*)\.W$"), r"\1.weight"),
    (re.compile(r"^(head\.sem_gcn\..*)\.e$"), r"\1.edge_logits"),
)
# Constructed but never used by the release's ResNet34Pure (L-GRN.md §2.2, §9 item 13).
_DROPPED_PREFIXES = ("backbone.fc.", "backbone.avgpool.")


def _state_dict_of(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError("expected an authors' checkpoint ({'epoch', 'optimizer', 'state_dict'}) or a state dict "
                         "of tensors")
    return state


def is_release_checkpoint(checkpoint: Any) -> bool:
    """True for a checkpoint (or bare state dict) in the authors' layout (``predictor.*`` keys)."""
    if not isinstance(checkpoint, dict) or "lgrn_version" in checkpoint or "config" in checkpoint:
        return False
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict):
        return False
    return any(isinstance(k, str) and k.removeprefix("module.").startswith("predictor.") for k in state)


def rename_release_key(key: str) -> str:
    """lgrn name of one release key (``module.`` already removed)."""
    for pattern, replacement in _RENAMES:
        key = pattern.sub(replacement, key)
    return key


def convert_release_state_dict(state_dict: dict[str, Any], config: dict) -> dict[str, torch.Tensor]:
    """Release-layout state dict (or a whole authors' checkpoint) -> lgrn ``LandmarkModel`` state dict
    for ``config`` (a resolved config). Raises ``ValueError`` listing every key that does not fit.

    With ``gcn_param.edge_weights: dynamic`` the relation learner (absent from the release) keeps its
    fresh initialisation, whose zero output makes the converted model compute exactly the static one.
    """
    from .model import build_model, strip_module_prefix

    state = strip_module_prefix(_state_dict_of(state_dict))
    ibn = [k for k in state if re.search(r"\.(IN|BN)\.", k)]
    if ibn:
        raise ValueError("this checkpoint comes from the release's 'ResNet34' backbone (IBN-a + CoordConv; keys "
                         f"such as {ibn[:3]}), which lgrn does not implement; only ResNet34Pure checkpoints convert")
    converted = {rename_release_key(k): v for k, v in state.items() if not k.startswith(_DROPPED_PREFIXES)}
    model = build_model(config, pretrained=False)
    own = model.state_dict()
    if config["structure"]["predictor_name"] == "BaseGCNPredictor" and model.head.relation is not None:
        for key, value in own.items():
            if key.startswith("head.relation.") and key not in converted:
                converted[key] = value
    reverse = {rename_release_key(k): k for k in state}
    missing = [k for k in own if k not in converted]
    unexpected = [reverse.get(k, k) for k in converted if k not in own]
    mismatched = [f"{reverse.get(k, k)}: checkpoint {tuple(converted[k].shape)} vs model {tuple(own[k].shape)} ({k})"
                  for k in own if k in converted and tuple(converted[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        structure = config["structure"]
        raise ValueError(
            f"the checkpoint does not match the model of the config (backbone {structure['backbone_name']}, "
            f"head {structure['predictor_name']}, {structure['num_kpts']} landmarks):\n"
            f"  lgrn keys with no checkpoint entry: {missing}\n  checkpoint keys lgrn has no place for: {unexpected}\n"
            f"  shape mismatches: {mismatched}")
    return {k: converted[k] for k in own}


def convert_release_checkpoint(checkpoint: dict[str, Any], config: dict) -> dict[str, Any]:
    """A whole lgrn checkpoint from an authors' one. Weights only: ``optimizer``, ``scheduler``,
    ``rng`` and ``best_nme`` are None (the release's SGD state indexes a parameter list that
    includes the dropped fc); ``epoch`` is kept."""
    from .. import __version__
    from ..config import get_scheme_for_config

    state = convert_release_state_dict(checkpoint, config)
    epoch = checkpoint.get("epoch", 0) if isinstance(checkpoint.get("epoch", 0), int) else 0
    return {"epoch": epoch, "optimizer": None, "state_dict": state, "config": config,
            "scheme": get_scheme_for_config(config).to_dict(), "scheduler": None, "rng": None,
            "lgrn_version": __version__, "best_nme": None}


def main(argv: list[str] | None = None) -> int:
    """``lgrn convert-checkpoint IN OUT --config CFG [--set key=value ...]``."""
    from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from ..config import ConfigError, load_config
    from .model import build_model, load_state_dict_strict

    parser = argparse.ArgumentParser(prog="lgrn convert-checkpoint",
                                     description="Convert a checkpoint saved by the authors' code (ResNet34Pure + "
                                                 "BaseGCNPredictor or FCPredictor) into an lgrn checkpoint.")
    parser.add_argument("input", help="authors' checkpoint (.pth.tar, with or without the 'module.' prefix)")
    parser.add_argument("output", help="lgrn checkpoint to write")
    parser.add_argument("--config", required=True, help="the YAML the checkpoint was trained with")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, overrides=args.set)
        checkpoint = load_checkpoint(args.input)
        if not is_release_checkpoint(checkpoint):
            raise ValueError(f"{args.input}: not in the authors' layout (no 'predictor.*' keys); lgrn checkpoints "
                             "need no conversion")
        converted = convert_release_checkpoint(checkpoint, config)
        model = build_model(config, pretrained=False)
        load_state_dict_strict(model, converted["state_dict"], args.input)  # proves it loads before writing
        save_checkpoint(args.output, converted)
    except (ValueError, FileNotFoundError, ConfigError, CheckpointError) as exc:
        print(f"lgrn convert-checkpoint: error: {exc}", file=sys.stderr)
        return 1
    state = _state_dict_of(checkpoint)
    dropped = [k for k in state if k.removeprefix("module.").startswith(_DROPPED_PREFIXES)]
    print(f"converted {len(state) - len(dropped)} tensors from {args.input} (dropped unused {dropped}) -> "
          f"{Path(args.output)} [{config['structure']['predictor_name']}, {config['structure']['num_kpts']} landmarks]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
