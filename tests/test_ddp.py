"""Distributed training on CPU: `torchrun --nproc_per_node=2 main.py ... --train` (gloo) trains, every
training sample is seen exactly once per epoch across the two ranks, rank 0 alone logs and
checkpoints, and the evaluation report covers every test image once, in annotation order."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from lgrn.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "experiments" / "synthetic" / "tiny.yaml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_run(tmp_path):
    exp = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", str(REPO / "main.py"), "--config", str(TINY), "--expname", str(exp),
               "--train", "--record-indices", "--no-progress", "--set", "train_param.scheduler.epochs=2"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    state = load_checkpoint(exp / "checkpoint.pth.tar")
    assert state["epoch"] == 2 and not any(k.startswith("module.") for k in state["state_dict"])
    # 32 samples, 2 ranks x batch 8: 2 iterations per rank per epoch, each sample once per epoch.
    seen: dict[int, list[int]] = {}
    for rank in (0, 1):
        rows = [json.loads(line) for line in (exp / "indices" / f"rank{rank}.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [0, 0, 1, 1]
        for row in rows:
            seen.setdefault(row["epoch"], []).extend(row["indices"])
    for epoch, indices in seen.items():
        assert sorted(indices) == list(range(32)), epoch
    assert seen[0] != seen[1]                       # reshuffled per epoch
    # Rank 0 alone logs: each epoch summary appears once in the combined output.
    assert done.stderr.count("epoch 1: loss") == 1
    names = [line.split()[-1] for line in (exp / "nme.txt").read_text().splitlines()]
    assert names == [f"synth_{i:06d}.png" for i in range(16)]
    records = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and all(r["iterations"] == 2 for r in records)
