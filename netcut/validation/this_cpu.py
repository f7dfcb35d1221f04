"""This project's own CPUs: networks measured here by ``scripts/measure_this_cpu.sh``.

Seventeen torchvision classifiers at batch 1, fp32, whole and trimmed at every
block cut, one folder per chip (``calibration/data/cpu-<profile>/``): the 2-vCPU
guests these sessions ran on were a Zen 3 on 2026-11-23 and a Zen 4 on 2026-12-04,
both named "AMD EPYC", and a Xeon 6 "Granite Rapids" on 2026-12-05, named "Intel(R)
Xeon(R) Processor" (the files written since 2026-12 record ``environment.cpu_id``). The
host CPU of the lent H200 machine (16 vCPUs of a Xeon "Emerald Rapids") was measured
the same way at 16 and 4 threads (``scripts/measure_device_host_cpu.sh``): it judges
a datasheet-only profile, ``xeon-emr-16c``, on a chip nobody tuned it for. The
calibration split is the same rule as for timm's CPUs: one network per op class the
profile prices apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import MeasurementError
from ..hardware import load_hardware
from ..measurements import load_measurements
from .fewshot import FewShotCase
from .report import Target

#: (data folder, profile, chip, threads) per machine measured, this project's own
#: 2-vCPU guests first, the newest at the top. The Granite Rapids was measured in 4 sweeps
#: over all networks, the Zen 4's best protocol, twice: with trimmed networks' layers bound
#: as plain attributes (``netcut/planner/bind.py``, the top row) and, earlier the same day,
#: without (their fx code then paid ~0.8 us per module-path step per layer). The Zen 4 was
#: measured three times over:
#: in 4 sweeps over all networks (scripts/measure_this_cpu.sh with SWEEPS=4), network
#: by network with ``netcut measure``'s default --keep-memory, and network by network
#: before --keep-memory existed. The Xeon is the H200 machine's host, priced with the
#: profile's thread override (``load_hardware(profile, cores=threads)``)
MACHINES = (
    ("cpu-xeon-gnr-2c-bound", "xeon-gnr-2c", "Xeon 6 Granite Rapids, 4 sweeps, TRN layers bound", 2),
    ("cpu-xeon-gnr-2c-sweeps", "xeon-gnr-2c", "Xeon 6 Granite Rapids, 4 sweeps", 2),
    ("cpu-epyc-genoa-2c-sweeps", "epyc-genoa-2c", "Zen 4 Genoa, 4 sweeps", 2),
    ("cpu-epyc-genoa-2c-keepmem", "epyc-genoa-2c", "Zen 4 Genoa", 2),
    ("cpu-epyc-genoa-2c", "epyc-genoa-2c", "Zen 4 Genoa, malloc left alone", 2),
    ("cpu-epyc-milan-2c", "epyc-milan-2c", "Zen 3 Milan", 2),
    ("cpu-xeon-emr-16c-t16", "xeon-emr-16c", "Xeon Emerald Rapids (H200 host)", 16),
    ("cpu-xeon-emr-16c-t4", "xeon-emr-16c", "Xeon Emerald Rapids (H200 host)", 4),
)
#: what each profile's uncalibrated numbers are (the report's "datasheet-only" rows)
PROFILE_BASIS = {
    "xeon-gnr-2c": "datasheet peaks, and efficiencies, per-op costs and bandwidths from "
                   "single-op micro-benchmarks on the chip, and in-network costs per op kind "
                   "from synthetic chains of generic patterns; nothing from a network",
    "epyc-genoa-2c": "datasheet peaks, and efficiencies, per-op costs and bandwidths from "
                     "single-op micro-benchmarks on the chip; nothing from a network",
    "epyc-milan-2c": "datasheet peaks and netcut's generic CPU efficiencies and costs",
    "xeon-emr-16c": "datasheet peaks and netcut's generic CPU efficiencies and costs "
                    "(written before any measurement of this chip)",
}
CPU_DATA, CPU_PROFILE, CPU_CHIP, CPU_THREADS = MACHINES[0]
#: machines whose rows are also judged on their minimums (each row's fastest timed call,
#: calibrated on the calibration networks' minimums too). On a shared VM a row's median
#: carries how busy the host was in its seconds, which no profile of the chip can know:
#: on the Zen 4 sweeps, run 2's row medians differ from run 1's by 12.4% MAPE even after
#: dividing out the uniform shift between the runs, and the row minimums by 4.5%
JUDGED_ON_MINIMUMS = ("cpu-xeon-gnr-2c-bound", "cpu-xeon-gnr-2c-sweeps", "cpu-epyc-genoa-2c-sweeps", "cpu-xeon-emr-16c-t16")
CALIBRATION_MODELS = ("resnet50", "mobilenet_v2", "resnext50_32x4d", "densenet121", "vit_b_16")
CPU_TARGETS = (Target("mape", "<=", 0.10), Target("within_10", ">=", 0.80))


def cpu_data_dir(name: str = CPU_DATA) -> Path:
    from importlib import resources

    try:
        base = resources.files("netcut.calibration") / "data"
    except ModuleNotFoundError:
        base = Path(__file__).resolve().parents[2] / "calibration" / "data"
    return Path(str(base / name))


def cpu_cases(directory: Path | None = None) -> list[FewShotCase]:
    """Every machine's run 1 (its folder) and, where it exists, run 2 (the ``-repeat``
    folder: the same script run again later): each calibrated on its own 5 networks and
    judged on its own held-out rows, so the report shows how much the answer moves with
    the data. ``directory``: one folder only, priced on the newest machine's profile."""
    if directory is not None:
        return machine_cases(Path(directory), CPU_PROFILE, CPU_CHIP, CPU_THREADS)
    cases = []
    for folder, profile, chip, threads in MACHINES:
        path = cpu_data_dir(folder)
        if path.is_dir() and any(path.glob("*.json")):
            cases += machine_cases(path, profile, chip, threads)
    if not cases:  # the newest machine's folder names what is missing
        cases = machine_cases(cpu_data_dir(), CPU_PROFILE, CPU_CHIP, CPU_THREADS)
    return cases


def machine_cases(directory: Path, profile: str, chip: str, threads: int = 2) -> list[FewShotCase]:
    key = directory.name
    again = directory.with_name(directory.name + "-repeat")
    repeated = again.is_dir() and any(again.glob("*.json"))
    cases = []
    for statistic in ("median", "min") if key in JUDGED_ON_MINIMUMS else ("median",):
        suffix = "" if statistic == "median" else "-min"
        cases.append(cpu_case(directory, key=key + suffix, profile=profile, chip=chip,
                              threads=threads, statistic=statistic))
        if repeated:
            cases.append(cpu_case(again, key=f"{key}{suffix}-run2", compare=False, run="run 2",
                                  profile=profile, chip=chip, threads=threads, statistic=statistic))
    return cases


def _statistic(rows: list, statistic: str) -> list:
    """The rows as they are (each row's median), or with each row's minimum in its place."""
    if statistic == "median":
        return rows
    return [r.model_copy(update={"median_ms": r.min_ms}) for r in rows if r.min_ms is not None]


def cpu_case(directory: Path | None = None, key: str = CPU_DATA,
             compare: bool = True, run: str = "run 1", profile: str = CPU_PROFILE,
             chip: str = CPU_CHIP, threads: int = CPU_THREADS,
             statistic: str = "median") -> FewShotCase:
    directory = cpu_data_dir() if directory is None else Path(directory)
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not files:
        raise MeasurementError(f"{directory}: no measurement files (run scripts/measure_this_cpu.sh)")
    loaded = [load_measurements(f) for f in files]
    rows = _statistic([r for m in loaded for r in m.rows], statistic)
    loads = [m.environment.get("load_average_1m") for m in loaded]
    loads = [x for x in loads if x is not None]
    load_text = f"; load average when each file started: {min(loads):.2f}-{max(loads):.2f}" if loads else ""
    repeat = (repeatability(rows, directory.with_name(directory.name + "-repeat"), statistic)
              if compare else "")
    judged = "" if statistic == "median" else ", row minimums"
    interleaved = re.search(r"Interleaved in (\d+) rounds", loaded[0].protocol)
    sweeps = re.search(r"Merged from (\d+) sweeps", loaded[0].protocol)
    rounds = (f"the median of {sweeps[1]} sweeps over all networks" if sweeps else
              f"interleaved in {interleaved[1]} rounds" if interleaved else "timed one after another")
    stamp = min(str(m.environment.get("timestamp", "?")) for m in loaded)[:16]
    return FewShotCase(
        key=key, title=f"{loaded[0].device} ({chip}), {threads} threads, measured by netcut measure from "
        f"{stamp} ({len(files)} files in calibration/data/{directory.name}/; rows {rounds})",
        profile=load_hardware(profile, cores=threads), rows=rows, calibration_models=CALIBRATION_MODELS,
        group=f"{chip}{'' if threads == 2 else f', {threads} threads'}, b1 fp32 eager, {run}{judged}, held out",
        targets=CPU_TARGETS,
        note=f"{chip}, {threads} threads{judged}: whole and trimmed networks, "
             f"{repeats_note(rows, sweeps, statistic)}{load_text}{repeat}; the "
             f"uncalibrated profile {profile}: {PROFILE_BASIS.get(profile, 'as shipped')}")


def repeatability(rows: list, directory: Path, statistic: str = "median") -> str:
    """How far the rows measured again in ``directory`` (the same script, run later)
    moved: a floor under any model's error on these rows. '' when nothing was repeated.

    Two floors: the rows as they moved, and after dividing out run 2's uniform shift
    (the median ratio over the held-out rows), which a 5-shot calibration absorbs; the
    second is what a calibration that predicted run 1 exactly would score on run 2."""
    files = sorted(directory.glob("*.json")) if directory.is_dir() else []
    if not files:
        return ""
    first = {r.key(): r.median_ms for r in rows}
    again = [r for r in _statistic([r for f in files for r in load_measurements(f).rows], statistic)
             if r.key() in first]
    if not again:
        return ""
    ratio = np.array([r.median_ms / first[r.key()] for r in again])
    moved = np.abs(ratio - 1)
    held = np.array([r.model not in CALIBRATION_MODELS for r in again])
    shift = float(np.median(ratio[held])) if held.any() else float(np.median(ratio))
    left = np.abs(ratio[held] / shift - 1) if held.any() else np.abs(ratio / shift - 1)
    nets = len({r.model for r in again})
    per_net = {m: float(np.median([q for q, r in zip(ratio, again) if r.model == m]))
               for m in sorted({r.model for r in again})}
    cal = [per_net[m] / shift for m in CALIBRATION_MODELS if m in per_net]
    rest = [v / shift for m, v in per_net.items() if m not in CALIBRATION_MODELS]
    spread = (f" Network by network, with that shift divided out, run 2 moved the calibration "
              f"networks by ×{min(cal):.3f}-{max(cal):.3f} and the held-out ones by "
              f"×{min(rest):.3f}-{max(rest):.3f} (median over each network's rows): a 5-shot "
              "calibration carries its networks' own shifts into every prediction"
              if cal and rest else "")
    return (f"; repeatability: {len(again)} rows of {nets} networks measured again later "
            f"(calibration/data/{directory.name}/, run 2) moved by median {np.median(moved):.1%}, "
            f"mean {moved.mean():.1%} (run 2 against run 1), {np.mean(moved <= 0.10):.0%} "
            "within ±10%: the MAPE and share within ±10% run 2 itself would score as a "
            f"prediction of run 1. Run 2 was uniformly ×{shift:.3f}; with that divided out, its "
            f"{int(held.sum()) or len(again)} held-out rows still differ by MAPE {left.mean():.1%}, "
            f"{np.mean(left <= 0.10):.0%} within ±10%: about the best a calibration that predicted "
            f"run 1 exactly could score on run 2.{spread}")


REPEATS_NOTE = "{what} of {n} timed calls per row after 5 warm-up calls"


def repeats_note(rows: list, sweeps, statistic: str = "median") -> str:
    """How each row's time was taken, in a few words."""
    n = rows[0].n if rows and rows[0].n else None
    if not sweeps:
        return REPEATS_NOTE.format(what="median" if statistic == "median" else "fastest",
                                   n=n or 20)
    count = int(sweeps[1])
    if statistic != "median":
        return (f"fastest of all {n or ''} timed calls of {count} sweeps per row "
                "(5 warm-up calls per network and sweep)")
    per = f"{n // count} " if n else ""
    return (f"median over {count} sweeps of each row's median of {per}timed calls "
            "(5 warm-up calls per network and sweep)")
