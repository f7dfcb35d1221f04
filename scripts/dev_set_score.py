"""Score a CPU profile on the development set, not on the validation's held-out rows.

    .venv/bin/python scripts/dev_set_score.py [--hw xeon-gnr-2c] \\
        [--data calibration/data/cpu-xeon-gnr-2c-dev] [--params auto] \\
        [--set overhead.eager.launch_us=95 ...] [--per-network] [--json]

The development set (``calibration/data/cpu-xeon-gnr-2c-dev/``, see its README) holds
the validation's 5 calibration networks, measured again, and networks that none of the
validation's 17 is. As ``netcut validate --only cpu`` does, the script calibrates the
profile on the 5 (``netcut.validation.this_cpu.CALIBRATION_MODELS``), here on the
development set's own measurements of them, and scores the other networks' rows with
the datasheet-only profile and the calibrated one, for the row medians and for the
row minimums. It also prints the calibration's own figures: the uncalibrated profile
on the calibration rows, and the leave-models-out error. ``--set`` changes numbers of
the profile first (dotted paths, as ``netcut calibrate`` names them), so a variant can
be judged here before anyone looks at held-out rows.

Two more development sets take ``--data``: ``cpu-xeon-gnr-2c-dev2/`` (9 more networks)
and ``cpu-xeon-gnr-2c-dev3/`` (8 networks of the held-out families, six of them built by
``netcut.zoo.variants``). Both were measured while the guest ran slower (their READMEs
say by how much), so their calibrated figures are the ones to compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netcut.errors import NetcutError  # noqa: E402
from netcut.hardware.loader import resolve_profile_path  # noqa: E402
from netcut.validation import this_cpu  # noqa: E402
from netcut.validation.fewshot import run_case, summarize  # noqa: E402
from netcut.validation.predictor import RowPredictor  # noqa: E402

DEV = ROOT / "calibration" / "data" / "cpu-xeon-gnr-2c-dev"


def with_settings(profile: str, settings: list[str], folder: Path) -> Path:
    """A copy of ``profile`` with each ``path=value`` of ``settings`` set (a source
    entry added for new paths), written in ``folder``."""
    data = yaml.safe_load(resolve_profile_path(profile).read_text())
    for setting in settings:
        path, sep, value = setting.partition("=")
        if not sep:
            raise SystemExit(f"error: --set {setting!r}: give path=value")
        node, keys = data, path.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = float(value)
        data.setdefault("sources", {}).setdefault(path, "set by scripts/dev_set_score.py --set")
    out = folder / "profile.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def score(profile: Path, data: Path, params, per_network: bool) -> list[dict]:
    """Per statistic (row medians, row minimums): the development rows' figures."""
    predictor = RowPredictor()
    results = []
    for statistic in ("median", "min"):
        case = this_cpu.cpu_case(data, key=f"{data.name}-{statistic}", compare=False,
                                 profile=str(profile), statistic=statistic)
        result = run_case(case, predictor, params=params)
        summary, calibration = summarize(result), result.calibration
        entry = {"statistic": statistic, "rows": len(result.held_out),
                 "dev_datasheet": summary["datasheet"], "dev_calibrated": summary["calibrated"],
                 "calibration_rows_uncalibrated": calibration["uncalibrated"],
                 "leave_models_out": calibration["leave_models_out"],
                 "scales": {k: round(v["scale"], 3) for k, v in calibration["params"].items()}}
        if per_network:
            entry["networks"] = {}
            for model in sorted({row.model for row in result.held_out}):
                pick = np.array([row.model == model for row in result.held_out])
                ratio = {"datasheet": result.datasheet_ms[pick] / result.measured[pick],
                         "calibrated": result.calibrated_ms[pick] / result.measured[pick]}
                entry["networks"][model] = {
                    k: {"median_ratio": float(np.median(v)), "within_10": float(np.mean(np.abs(v - 1) <= 0.1))}
                    for k, v in ratio.items()} | {"rows": int(pick.sum())}
        results.append(entry)
    return results


def _figures(block: dict) -> str:
    return f"{block['mape']:.1%} MAPE, {block['within_10']:.0%} within ±10%"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hw", default="xeon-gnr-2c", help="a shipped profile's name or a YAML file")
    parser.add_argument("--data", type=Path, default=DEV, help="a development-set folder")
    parser.add_argument("--params", default="auto", help="'auto' or names, as netcut calibrate takes")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--per-network", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    params = args.params if args.params == "auto" else args.params.split(",")
    try:
        with tempfile.TemporaryDirectory() as folder:
            profile = with_settings(args.hw, args.settings, Path(folder))
            results = score(profile, args.data, params, args.per_network)
    except NetcutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return 0
    for r in results:
        print(f"row {r['statistic']}s, {r['rows']} development rows: datasheet-only "
              f"{_figures(r['dev_datasheet'])}; calibrated {_figures(r['dev_calibrated'])} "
              f"({', '.join(f'{k} x{v}' for k, v in r['scales'].items())})")
        print(f"  calibration rows: uncalibrated {_figures(r['calibration_rows_uncalibrated'])}; "
              f"left out of the fit {_figures(r['leave_models_out'])}")
        for model, n in r.get("networks", {}).items():
            print(f"  {model:22s} {n['rows']:3d} rows  datasheet x{n['datasheet']['median_ratio']:.3f} "
                  f"({n['datasheet']['within_10']:.0%})  calibrated x{n['calibrated']['median_ratio']:.3f} "
                  f"({n['calibrated']['within_10']:.0%})")
    mean = {k: np.mean([r[k]["within_10"] for r in results])
            for k in ("dev_datasheet", "dev_calibrated", "calibration_rows_uncalibrated")}
    print(f"mean of the two: within ±10% datasheet-only {mean['dev_datasheet']:.0%}, calibrated "
          f"{mean['dev_calibrated']:.0%}; calibration rows uncalibrated "
          f"{mean['calibration_rows_uncalibrated']:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
