"""The report of ``lgrn bench``: the table of records, derived summary lines (head / backbone ratio,
fast / fp32 training speed-up), the environment line printed with every table (torch, threads,
device, CPU and its capability, the precision ``amp: auto`` chooses there; docs/training.md), and
the JSON file of the records.
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from ..atomic import write_text_atomic
from ..engine.runtime import cpu_capability, resolve_amp
from .records import BenchRecord

__all__ = ["summary_lines", "format_table", "cpu_name", "environment_line", "write_json"]


def summary_lines(records: list[BenchRecord]) -> list[str]:
    """Derived figures: head / backbone ratio, fast / fp32 training speed-up."""
    lines = []
    by_key = {(r.kind, r.model, r.variant, r.batch): r for r in records}
    for r in records:
        if r.kind == "inference" and r.variant == "head":
            backbone = by_key.get(("inference", r.model, "backbone", r.batch))
            if backbone:
                lines.append(f"{r.model}: head {r.ms_per_batch:.1f} ms = "
                             f"{100 * r.ms_per_batch / backbone.ms_per_batch:.2f} % of the backbone's "
                             f"{backbone.ms_per_batch:.1f} ms (batch {r.batch})")
        if r.kind == "train" and r.variant == "fast":
            fp32 = by_key.get(("train", r.model, "fp32", r.batch))
            if fp32:
                lines.append(f"{r.model}: training fast path {r.images_per_s / fp32.images_per_s:.2f}x the fp32 "
                             f"path ({r.images_per_s:.2f} vs {fp32.images_per_s:.2f} images/s, batch {r.batch})")
    return lines


def format_table(records: list[BenchRecord]) -> str:
    """The records as an aligned text table (numbers right-aligned)."""
    header = ("kind", "model", "variant", "batch", "ms/batch", "images/s", "peak MB", "note")
    rows = [(r.kind, r.model, r.variant, str(r.batch), f"{r.ms_per_batch:.1f}", f"{r.images_per_s:.2f}",
             f"{r.peak_mem_mb:.0f}", r.note) for r in records]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6}

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(row, widths))).rstrip()
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_line(device: torch.device, threads: int | None) -> str:
    """One line on what the numbers were measured with (``threads``: the number asked for)."""
    cpu = f"{cpu_name()} ({os.cpu_count()} logical cores)"
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    precision = resolve_amp("auto", device.type) or "fp32"
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads (asked {threads}), device {device}"
            f"{gpu}, CPU {cpu}, capability {cpu_capability()}, fast-path precision (amp: auto) {precision}, "
            f"python {platform.python_version()}")


def write_json(path: str | Path, records: list[BenchRecord]) -> None:
    """Write the records as a JSON list (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps([r.to_json() for r in records], indent=2) + "\n")
