"""Convert ../shared/measurements (the H100 reference data) into calibration/data
in netcut's measurement schema. Run once; the outputs are committed read-only data.

    python scripts/convert_shared_measurements.py ../shared/measurements calibration/data
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROTOCOL = (
    "eager PyTorch (or a CUDA-graph replay for mode=graph), model.eval(), torch.no_grad(), "
    "random weights, random normal input, NCHW; cudnn.benchmark=True, TF32 on for conv and "
    "off for matmul; CUDA events around one call after warm-up; median/min/p90 over n calls. "
    "Trimmed networks: the first k blocks, then AdaptiveAvgPool2d(1), flatten, Linear(C, 10)."
)
SOURCE = "../shared/measurements ({}), copied with its README's facts; not produced by netcut"


def _row(r: dict, mode: str) -> dict:
    row = {
        "model": r["model"],
        "input": [3, r.get("res", 224), r.get("res", 224)],
        "batch": r["batch"],
        "dtype": r["dtype"],
        "mode": mode,
        "median_ms": r["median_ms"],
        "min_ms": r["min_ms"],
        "p90_ms": r["p90_ms"],
        "n": r["n"],
    }
    if "last_block" in r:
        row["cut"] = {"last_block": r["last_block"], "k": r["k"], "n_blocks": r["n_blocks"],
                      "channels": r["channels"], "spatial": r["spatial"]}
    return row


def main(src: Path, dst: Path) -> None:
    outputs = {
        "h100-eager": ("h100-eager/whole_and_trimmed.json", "eager", ("whole", "trimmed")),
        "h100-eager-repeat": ("h100-eager/whole_repeat.json", "eager", ("whole",)),
        "h100-graph": ("h100-graph/whole.json", "graph", ("whole",)),
    }
    for name, (rel, mode, keys) in outputs.items():
        data = json.loads((src / rel).read_text())
        info = data["info"]
        rows = [_row(r, mode) for key in keys for r in data[key]]
        doc = {
            "schema": "netcut-measurements",
            "version": 1,
            "device": info["gpu"],
            "profile_hint": "h100-sxm",
            "source": SOURCE.format(rel),
            "protocol": PROTOCOL,
            "environment": info,
            "rows": rows,
        }
        (dst / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{name}: {len(rows)} rows")
    layers = json.loads((src / "h100-eager/per_layer.json").read_text())
    (dst / "h100-eager-layers.json").write_text(json.dumps(
        {"schema": "netcut-layer-measurements", "version": 1, "device": layers["info"]["gpu"],
         "source": SOURCE.format("h100-eager/per_layer.json"),
         "protocol": "each leaf module timed alone on its captured input (CUDA events, "
                     "includes a ~25 us host floor)",
         "environment": layers["info"], "rows": layers["leaves"]}) + "\n")
    print(f"h100-eager-layers: {len(layers['leaves'])} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
