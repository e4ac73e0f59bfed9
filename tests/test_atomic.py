"""lgrn.atomic: files appear whole or not at all, with the permissions the umask gives (not mkstemp's
private 0600), and temporary files left by a dead process are removed at the next write."""
from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
import torch

from lgrn.atomic import atomic_write, remove_stale_temps, write_text_atomic
from lgrn.checkpoint import save_checkpoint
from lgrn.data.readers import write_text_atomic as write_lines


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "a.txt", "x\n")
        save_checkpoint(tmp_path / "c.pth.tar", {"w": torch.zeros(2)})
        write_lines(tmp_path / "list.txt", ["1 2 a.jpg"])
    finally:
        os.umask(old)
    for name in ("a.txt", "c.pth.tar", "list.txt"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "report.json"
    write_text_atomic(target, "old\n")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_temps_of_dead_processes_are_removed(tmp_path):
    # a process that dies (kill -9) in the middle of a write leaves its temporary file behind
    script = ("import os, sys; sys.path.insert(0, sys.argv[2]); from lgrn.atomic import atomic_write\n"
              "atomic_write(sys.argv[1], lambda h: (h.write(b'x' * 1000), h.flush(), os.kill(os.getpid(), 9)))")
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    for _ in range(3):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "ckpt.pth.tar"), src], check=False)
    # each new write removed the temp of the killed one before it: one is left, from the last kill
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".ckpt.pth.tar.") and left[0].endswith(".tmp")
    live = tmp_path / f".other.{os.getpid()}.abc.tmp"       # a write in progress in this very process
    live.write_bytes(b"y")
    write_text_atomic(tmp_path / "ckpt.pth.tar", "done\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ckpt.pth.tar", live.name])
    assert remove_stale_temps(tmp_path) == 0
