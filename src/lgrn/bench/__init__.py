"""``lgrn bench``: inference latency and throughput per backend and model, training-step throughput
(the faithful fp32 path and the fast path), data-pipeline throughput, the head's cost against the
backbone's, peak memory - printed as a table and optionally written as JSON records
``{kind, model, variant, batch, images_per_s, ms_per_batch, peak_mem_mb}``. ``--scale`` trains on a
WFLW-size synthetic set for a few steps and projects the release's 500-epoch schedule.

Timings use CUDA events on a GPU and ``perf_counter`` on the CPU; every number is a median over
repeated calls after warm-up. Run it on a quiet machine: the load average is printed with the table.
The first paragraph above is also the help text of ``lgrn bench`` (:mod:`lgrn.cli.bench`, which parses
the command line and calls the typed functions here).

Modules: :mod:`.run` (:class:`BenchOptions`, :func:`run_benchmarks`), :mod:`.inference` (backends and
the head / backbone split), :mod:`.train` (training steps, through :mod:`.throughput`), :mod:`.data`
(the data pipeline), :mod:`.scale` (``--scale``), :mod:`.models` (the benchmark models, read from the
shipped experiment configs), :mod:`.report` (table, summary, environment, JSON), and the measuring
primitives :mod:`.timing` (medians of repeated calls), :mod:`.memory` (peak memory, GPU utilisation)
and :mod:`.records` (:class:`BenchRecord`). docs/performance.md reports the numbers.
"""
from __future__ import annotations

from .models import BENCH_MODELS, DEFAULT_MODELS, QUICK_MODELS, BenchModel, model_config
from .records import BenchRecord, make_record
from .report import environment_line, format_table, summary_lines, write_json
from .run import SECTIONS, BenchOptions, CudaUnavailable, quick_options, resolve_bench_device, run_benchmarks
from .scale import run_scale
from .throughput import train_step_throughput, variant_config
from .timing import Timing, load_average, time_calls

__all__ = ["SECTIONS", "BenchOptions", "CudaUnavailable", "quick_options", "resolve_bench_device",
           "run_benchmarks", "run_scale", "BenchRecord", "make_record", "summary_lines", "format_table",
           "environment_line", "write_json", "BENCH_MODELS", "BenchModel", "DEFAULT_MODELS", "QUICK_MODELS",
           "model_config", "train_step_throughput", "variant_config", "Timing", "time_calls", "load_average"]
