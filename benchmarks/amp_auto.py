"""What ``amp: auto`` saves on this CPU: training steps of the demo model (MobileNetV2 L-GRN, 128 px, batch 32)
in float32 (``amp: null``), with ``amp: auto`` and with ``amp: bf16`` forced, on the CPU's own capability.

    python benchmarks/amp_auto.py --threads 2 --steps 3

On a CPU without native bf16 (``torch.backends.cpu.get_cpu_capability()`` = AVX2 or AVX512) ``auto`` is
float32, and forced bf16 is emulated and slower; with AVX512_BF16 / AMX ``auto`` is bf16.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lgrn import load_config  # noqa: E402
from lgrn.engine.runtime import cpu_capability, resolve_amp  # noqa: E402
from lgrn.bench.throughput import train_step_throughput  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(REPO / "experiments" / "synthetic" / "demo_lgrn.yaml")
    print(f"capability {cpu_capability()}: amp auto -> {resolve_amp('auto', 'cpu') or 'fp32'}; "
          f"{args.threads} threads, batch {args.batch}, {args.steps} timed steps", flush=True)
    rates = {}
    for amp in (None, "auto", "bf16"):
        config["train_param"]["amp"] = amp
        record = train_step_throughput(config, args.batch, args.steps, "config")
        rates[str(amp)] = record["images_per_s"]
        print(f"amp {str(amp):5s}: {record['images_per_s']:7.2f} images/s ({record['ms_per_batch']:.0f} ms per batch)",
              flush=True)
    print(f"auto / fp32: {rates['auto'] / rates['None']:.2f}x; forced bf16 / fp32: {rates['bf16'] / rates['None']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
