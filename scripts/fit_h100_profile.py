"""Refit hwmodels/h100-sxm.yaml's efficiencies and overheads to the shipped H100 data.

    python scripts/fit_h100_profile.py            # rewrite hwmodels/h100-sxm.yaml
    python scripts/fit_h100_profile.py --dry-run  # print the fitted values only

The fit (netcut/validation/fit.py) uses every row of calibration/data/h100-graph.json
and h100-eager.json, so the YAML is the best profile for users. Its *error* is not
judged here: ``netcut validate`` refits from scratch with each model left out and
scores only the model it did not see (reports/validation.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from netcut.files import atomic_write_text
from netcut.hardware import load_hardware
from netcut.hardware.loader import parse_profile
from netcut.measurements import load_measurements, shipped_measurements
from netcut.validation.fit import fit_gpu_profile

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "hwmodels" / "h100-sxm.yaml"
FITTED_FROM = (
    "fitted by scripts/fit_h100_profile.py to calibration/data/h100-graph.json (device "
    "terms) and h100-eager.json (host terms), all 11 models; leave-models-out error in "
    "reports/validation.md"
)
MATMUL_FROM = (
    "not fitted: set from micro-benchmarks on an H200 (the same chip's compute), fp32 Linear "
    "at batch 64 and an 8192^3 fp16 matmul (calibration/data/h200/; netcut/validation/fit.py FIXED)"
)
HEADER = """\
# NVIDIA H100 SXM5 80 GB (HBM3). Peaks are dense (no 2:4 sparsity); float32 on tensor
# cores is TF32. use_unit follows PyTorch's defaults: cuDNN convolutions may use TF32,
# matmuls may not. Efficiency, occupancy and overhead values are written by
# scripts/fit_h100_profile.py; edit the datasheet fields by hand, then rerun it.
"""
ORDER = ("schema_version", "name", "kind", "vendor", "description", "host", "default_mode",
         "compute", "memory", "efficiency", "overhead", "sources")
FITTED = ("efficiency", "overhead")


class _Dumper(yaml.SafeDumper):
    """Block style at the top, flow style for small leaf mappings (readable diffs)."""


def _represent_dict(dumper, data):
    leaf = all(isinstance(v, (int, float)) or (isinstance(v, str) and len(v) < 20)
               for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=leaf)


_Dumper.add_representer(dict, _represent_dict)


def _round(value):
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    graph = load_measurements(shipped_measurements("h100-graph")).rows
    eager = load_measurements(shipped_measurements("h100-eager")).rows
    base = load_hardware(TARGET)
    fitted, values = fit_gpu_profile(base, graph, eager)
    for name, value in values.items():
        print(f"{name:50s} {value:.4g}")
    if args.dry_run:
        return 0
    dumped = fitted.model_dump(mode="json", exclude_none=True)
    for key in FITTED:
        dumped[key] = _round(dumped[key])
    dumped["compute"]["saturation_outputs"] = _round(dumped["compute"]["saturation_outputs"])
    data = {key: dumped[key] for key in ORDER if key in dumped}
    sources = dict(base.sources)
    for key in ("efficiency", "overhead", "compute.saturation_outputs"):
        sources[key] = FITTED_FROM
    sources["efficiency.compute.matmul"] = MATMUL_FROM
    data["sources"] = sources
    text = HEADER + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=110)
    parse_profile(text, str(TARGET))  # refuse to write an invalid profile
    atomic_write_text(TARGET, text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
