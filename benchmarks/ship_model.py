"""Turn a trained 68-point checkpoint into the model shipped inside the package: the weights file
(``lgrn.pretrained.pack_checkpoint``: fp16, no optimiser state) and its model card, with the numbers
taken from the JSON that ``benchmarks/w300_results.py --json`` wrote for that checkpoint.

    python benchmarks/w300_results.py --model lgrn=runs/300w_mnv2_lgrn_s0/checkpoint_best.pth.tar \\
        --detector --int8 --json runs/w300_results.json
    python benchmarks/ship_model.py --checkpoint runs/300w_mnv2_lgrn_s0/checkpoint_best.pth.tar \\
        --results runs/w300_results.json --result-name lgrn \\
        --command "lgrn train --config experiments/300W/config_mobilenet.yaml --expname runs/300w_mnv2_lgrn_s0"
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from lgrn.checkpoint import load_checkpoint  # noqa: E402
from lgrn.atomic import write_text_atomic  # noqa: E402
from lgrn.models import count_parameters, load_model  # noqa: E402
from lgrn.pretrained import DEFAULT_MODEL, HERE, PRETRAINED, pack_checkpoint  # noqa: E402


HEADS = {"BaseGCNPredictor": "L-GRN (the landmark-graph head, `BaseGCNPredictor`)",
         "FCPredictor": "the FC baseline head (`FCPredictor`)"}


def card_text(name: str, result: dict, config: dict, parameters: int, epoch: int, best_nme: float,
              command: str, size_mb: float, note: str = "") -> str:
    s, tp = config["structure"], config["train_param"]
    gt = result["gt_crops"]
    lines = [
        f"# Model card: `{name}`",
        "",
        f"68 facial landmarks (the 300-W / iBUG scheme, `(x, y)` in image pixels) with "
        f"{HEADS.get(s['predictor_name'], s['predictor_name'])} on a {s['backbone_name']} backbone at "
        f"{s['crop_size']} x {s['crop_size']} px, {parameters / 1e6:.2f} M parameters, stored as fp16 "
        f"({size_mb:.1f} MB). Load it with `lgrn.FaceAligner.from_pretrained()`; `lgrn predict` and "
        "`lgrn export` use it when no `--checkpoint` is given.",
        "",
        "## Licence of the weights",
        "",
        "Trained on 300-W (Sagonas et al.), whose images and annotations are for **non-commercial research "
        "use only**. These weights inherit those terms: use them for research, not in a commercial product. "
        "The lgrn code itself is MIT.",
        "",
        "## Data",
        "",
        "- Training: 2,012 faces of the 300-W training set (all 337 AFW, 805 of 811 LFPW train, 870 of 2,000 "
        "HELEN train), minus a 10 % validation split (201 faces, fixed by the seed) that picks the best epoch. "
        "The test set is never used for any choice.",
        "- Test: the 300-W common test set, 554 faces (HELEN test 330 + LFPW test 224). The iBUG challenging "
        "subset is not part of the data, so 'full' is not reported.",
        f"- Input: a square crop of 1.2 x the larger side of the face box, resized to {s['crop_size']} px, "
        "per-image per-channel z-score (`lgrn prepare 300w --size 128`, the same crop `lgrn predict` cuts).",
        "",
        "## Numbers (300-W common, 554 faces, crops from the ground-truth landmark box)",
        "",
        "| subset | faces | NME inter-ocular (%) | NME inter-pupil (%) | FR@0.1 inter-ocular (%) | AUC@0.1 inter-ocular |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("all", "common"), ("helen", "HELEN test"), ("lfpw", "LFPW test")):
        r = gt[key]
        lines.append(f"| {label} | {r['count']} | {r['nme_io']:.2f} | {r['nme_ip']:.2f} | {r['fr_io']:.2f} | "
                     f"{r['auc_io']:.4f} |")
    lines += ["", "AUC is the release's convention (trapezoid over the 20-point CED grid up to 0.1, maximum 0.95)."]
    det = result.get("detector_crops")
    if det:
        lines += ["", f"With the default face detector's boxes ({det['detector']}) instead of the ground truth: "
                  f"found {det['found']} of {det['faces']} faces; on those, NME inter-ocular "
                  f"{100 * det['nme_io_found']:.2f} %, inter-pupil {100 * det['nme_ip_found']:.2f} %; counting the "
                  f"{det['missed']} missed faces as failures, FR@0.1 {100 * det['fr_io']:.2f} %, AUC@0.1 "
                  f"{det['auc_io']:.4f}."]
    q = result.get("int8")
    if q:
        lines += ["", f"ONNX Runtime: fp32 NME {q['onnx_fp32_nme_io']:.3f} %, static int8 {q['onnx_int8_nme_io']:.3f} % "
                  f"({q['int8_change_points']:+.3f} points; calibrated on 64 training crops)."]
    milestones = ", ".join(str(m) for m in tp["scheduler"]["milestones"])
    lines += [
        "",
        "## Training",
        "",
        "```bash",
        "lgrn prepare 300w --root PATH/TO/300W --out data/300W_128 --size 128",
        command,
        "```",
        "",
        f"{tp['optimizer']['type']} ({', '.join(f'{k} {v}' for k, v in tp['optimizer']['kwargs'].items())}), "
        f"batch {tp['batch_size']}, {tp['scheduler']['epochs']} epochs with the learning rate x "
        f"{tp['scheduler']['gamma']} after epochs {milestones}, seed {tp['seed']}, fp32 on a 2-core CPU. Loss: "
        f"Soft Wing on the positions + the relative-location (graph Laplacian) loss, weights "
        f"{tp['task_weight']} / {tp['laplace_weight']}. Augmentation: rotation up to {tp['rotation']} degrees, "
        f"scale {tp['scale_min']}-{tp['scale_max']}, shift up to {tp['translate_rate']} of the crop, mirror, "
        "random occluder, bilinear warp. Best checkpoint on the validation split: after "
        f"{epoch} epochs (validation NME {100 * best_nme:.2f} % inter-ocular).",
        *(["", note] if note else []),
        "",
        "Measure it again with `python benchmarks/w300_results.py --detector --int8`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--results", required=True, type=Path, help="JSON from benchmarks/w300_results.py")
    parser.add_argument("--result-name", required=True, help="the model's NAME in that JSON")
    parser.add_argument("--command", required=True, help="the training command, for the card")
    parser.add_argument("--name", default=DEFAULT_MODEL, choices=sorted(PRETRAINED))
    parser.add_argument("--note", default="", help="a paragraph for the card's training section (e.g. an earlier stage)")
    args = parser.parse_args(argv)
    results = {r["model"]: r for r in json.loads(args.results.read_text())}
    if args.result_name not in results:
        parser.error(f"{args.results} has no model {args.result_name!r} (has {sorted(results)})")
    result = results[args.result_name]
    if Path(result["checkpoint"]).resolve() != args.checkpoint.resolve():
        parser.error(f"{args.results}: {args.result_name!r} was measured on {result['checkpoint']}, not {args.checkpoint}")
    target = HERE / PRETRAINED[args.name]
    source = load_checkpoint(args.checkpoint)
    card_data = {"name": args.name, "numbers": result, "command": args.command}
    pack_checkpoint(args.checkpoint, target, card=json.loads(json.dumps(card_data)))
    model = load_model(target)
    text = card_text(args.name, result, model.config, count_parameters(model), int(source["epoch"]),
                     float(source["best_nme"]), args.command, target.stat().st_size / 2 ** 20, args.note)
    write_text_atomic(target.with_suffix(".md"), text)
    print(f"wrote {target} ({target.stat().st_size / 2 ** 20:.1f} MB) and {target.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
