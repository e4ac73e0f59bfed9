"""The rows of ``lgrn bench``: :class:`BenchRecord` (one measurement, written to JSON as
``{kind, model, variant, batch, images_per_s, ms_per_batch, peak_mem_mb}``) and :func:`make_record`,
which turns a :class:`lgrn.bench.timing.Timing` into one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .timing import Timing

__all__ = ["KINDS", "BenchRecord", "make_record"]

KINDS = ("inference", "train", "data")


@dataclass
class BenchRecord:
    """One row of the benchmark: ``images_per_s`` = batch / (ms_per_batch / 1000).

    ``note`` is printed in the table but not written to JSON (the JSON schema is fixed)."""

    kind: str
    model: str
    variant: str
    batch: int
    images_per_s: float
    ms_per_batch: float
    peak_mem_mb: float
    note: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"record kind must be one of {KINDS}, got {self.kind!r}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("note")
        return data


def make_record(kind: str, model: str, variant: str, batch: int, timing: Timing, peak_mb: float,
                note: str = "") -> BenchRecord:
    """The record of ``timing`` (median milliseconds per call of ``batch`` images)."""
    ms = timing.median_ms
    return BenchRecord(kind=kind, model=model, variant=variant, batch=int(batch),
                       images_per_s=batch * 1000.0 / ms if ms > 0 else 0.0, ms_per_batch=ms,
                       peak_mem_mb=round(peak_mb, 1), note=note)
