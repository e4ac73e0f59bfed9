"""Training and evaluation engine (docs/training.md): the trainer (``trainer``), evaluation
(``evaluate``) and its report files (``report``), checkpoints (``state``), the learning-rate schedule
(``schedule``), data loaders and the selection rule (``loaders``), DDP helpers (``distributed``),
run-time plumbing (``runtime``), what the training / evaluation commands run (``commands``), the
detector-crop evaluation (``detector_eval``) and the demo (``demo``, ``demo_real``).

Import what you need from its module, e.g. ``from lgrn.engine.trainer import Trainer``; the package
itself imports nothing, so ``import lgrn.engine`` stays cheap. The command lines are in ``lgrn.cli``.
"""
