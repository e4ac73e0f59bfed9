"""Authors' checkpoints -> lgrn, as pure state-dict functions (no file is read here; the files go
through :mod:`lgrn.models.loading`): ``convert_release_state_dict`` renames the release's state-dict keys
(``backbone.*``, ``predictor.map_to_node.*``, ``predictor.sem_gcn.*`` with ``W`` / ``e`` / ``bias``,
``predictor.fc1/fc2.*``; with or without DataParallel's ``module.`` prefix) to lgrn's model and drops
the backbone's unused ``fc``; ``convert_release_checkpoint`` wraps the result in a full lgrn checkpoint.
Edge logits need no reordering: both the release and lgrn lay them out in row-major order of the
adjacency pattern (docs/models.md, "Converting the authors' checkpoints").
"""
from __future__ import annotations

import re
from typing import Any

import torch

from .._version import __version__
from .model import build_model, scheme_for_structure, strip_module_prefix

# (pattern, replacement) applied in order to each release key (after removing "module.").
_RENAMES = (
    (re.compile(r"^predictor\.sem_gcn\.gconv_input\.0\."), "head.sem_gcn.gconv_input."),
    (re.compile(r"^predictor\."), "head."),
    (re.compile(r"^(head\.sem_gcn\..*)\.W$"), r"\1.weight"),
    (re.compile(r"^(head\.sem_gcn\..*)\.e$"), r"\1.edge_logits"),
)
# Constructed but never used by the release's ResNet34Pure (docs/deviations.md, release bug 13).
_DROPPED_PREFIXES = ("backbone.fc.", "backbone.avgpool.")


def release_state_dict(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict of an authors' checkpoint (``checkpoint["state_dict"]``) or the bare state dict
    itself; ``ValueError`` unless it is a non-empty dict of tensors."""
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
    state = strip_module_prefix(release_state_dict(state_dict))
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


def convert_release_checkpoint(checkpoint: dict[str, Any], config: dict,
                               lgrn_version: str = __version__) -> dict[str, Any]:
    """A whole lgrn checkpoint from an authors' one for ``config`` (a resolved config), stamped with
    ``lgrn_version`` (``lgrn.__version__``). Weights only: ``optimizer``, ``scheduler``, ``rng`` and
    ``best_nme`` are None (the release's SGD state indexes a parameter list that includes the dropped
    fc); ``epoch`` is kept."""
    state = convert_release_state_dict(checkpoint, config)
    epoch = checkpoint.get("epoch", 0) if isinstance(checkpoint.get("epoch", 0), int) else 0
    return {"epoch": epoch, "optimizer": None, "state_dict": state, "config": config,
            "scheme": scheme_for_structure(config["structure"]).to_dict(), "scheduler": None, "rng": None,
            "lgrn_version": lgrn_version, "best_nme": None}


def dropped_release_keys(checkpoint: dict[str, Any]) -> list[str]:
    """Keys of an authors' checkpoint (as stored, ``module.`` prefix included) that the conversion drops
    because the release never uses them (the backbone's ``fc`` / ``avgpool``)."""
    return [k for k in release_state_dict(checkpoint) if k.removeprefix("module.").startswith(_DROPPED_PREFIXES)]
