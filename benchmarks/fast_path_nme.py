"""Does the fast training path learn as well as the faithful one? (issue 6 item 2)

Trains the same configuration twice on the same synthetic faces - the faithful ``fp32`` path (eager
float32, as released) and the ``fast`` path (bf16 autocast + channels_last) - with the same seed,
data order and augmentation, then evaluates both final models on the same held-out synthetic test
set. With several ``--seeds`` each seed trains both variants; the spread between fp32 runs of
different seeds is the yardstick for the fp32-vs-fast difference (a short run is far from
converged, so seed alone moves the NME). Prints a table and writes ``results.json`` into ``--out``.

    python benchmarks/fast_path_nme.py --out bench_output/fast_nme --seeds 0,1
    python benchmarks/fast_path_nme.py --config experiments/synthetic/demo_lgrn.yaml --set train_param.scheduler.epochs=6
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "experiments" / "synthetic" / "demo_lgrn.yaml"


def run(config_path: Path, overrides: list[str], out: Path, seeds: list[int], threads: int) -> list[dict]:
    from lgrn.bench.throughput import variant_config
    from lgrn.config import get_scheme_for_config, load_config
    from lgrn.data.dataset import build_test_dataset, build_train_dataset
    from lgrn.engine.evaluate import evaluate
    from lgrn.engine.trainer import Trainer

    torch.set_num_threads(threads)
    base = load_config(config_path, overrides)
    scheme = get_scheme_for_config(base)
    # One data set for every run: the seed changes initialisation, order and augmentation only.
    data = build_train_dataset(base, scheme, seed=int(base["train_param"]["seed"] or 0))
    test_set = build_test_dataset(base, scheme)
    runs = [(variant, seed) for seed in seeds for variant in ("fp32", "fast")]
    rows = []
    for variant, run_seed in runs:
        config = variant_config(base, variant)
        config["train_param"]["seed"] = run_seed
        folder = out / f"{variant}_seed{run_seed}"
        started = time.perf_counter()
        trainer = Trainer(config, folder, progress=False, data=data, test_set=test_set)
        summary = trainer.fit()
        seconds = time.perf_counter() - started
        tp = config["train_param"]
        result = evaluate(trainer.model, test_set, scheme, torch.device("cpu"),
                          int(config["test_param"]["batch_size"]), 0, amp=tp["amp"],
                          channels_last=bool(tp["channels_last"]), progress=False)
        steps = sum(record["iterations"] for record in summary["history"])
        train_seconds = sum(record["seconds"] for record in summary["history"])
        rows.append({"variant": variant, "seed": run_seed, "test_nme": float(result.nme),
                     "final_loss": float(summary["history"][-1]["loss"]), "steps": int(steps),
                     "train_images_per_s": steps * int(tp["batch_size"]) / train_seconds,
                     "seconds": seconds})
        logging.getLogger("lgrn").info("%s seed %d: test NME %.4f in %.0f s", variant, run_seed, result.nme, seconds)
    fp32 = {row["seed"]: row["test_nme"] for row in rows if row["variant"] == "fp32"}
    for row in rows:
        row["relative_to_fp32"] = row["test_nme"] / fp32[row["seed"]] - 1.0
    return rows


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=Path("bench_output") / "fast_nme")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (default 0)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows = run(args.config, args.overrides, args.out, seeds, args.threads)
    print(f"\nconfig {args.config} {' '.join(args.overrides)}")
    print("| variant | seed | test NME | vs fp32 | final loss | steps | train images/s | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['seed']} | {r['test_nme']:.4f} | {100 * r['relative_to_fp32']:+.1f} % | "
              f"{r['final_loss']:.4f} | {r['steps']} | {r['train_images_per_s']:.1f} | {r['seconds']:.0f} |")
    by_variant = {v: [r["test_nme"] for r in rows if r["variant"] == v] for v in ("fp32", "fast")}
    means = {v: mean(nmes) for v, nmes in by_variant.items()}
    print(f"\nmean test NME over seeds {seeds}: fp32 {means['fp32']:.4f}, fast {means['fast']:.4f} "
          f"({100 * (means['fast'] / means['fp32'] - 1):+.1f} %); fp32 seed-to-seed range "
          f"{min(by_variant['fp32']):.4f}..{max(by_variant['fp32']):.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"config": str(args.config), "overrides": args.overrides,
                                                       "seeds": seeds, "rows": rows, "mean_nme": means}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
