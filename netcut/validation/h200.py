"""H200: a GPU nobody fitted a profile to, measured by this project.

``calibration/data/h200/`` holds 11 networks measured on one H200 with
``scripts/measure_gpu.py`` (CUDA-graph and eager, whole and trimmed). No profile
is fitted to them here. Two predictions are judged on every row:

* *datasheet-only*: the shipped ``h200`` profile (datasheet peaks and bandwidth,
  netcut's generic efficiencies and overheads);
* *H100 fit moved*: the ``h100-sxm`` profile as fitted to the shared H100 data,
  with the H200's memory (4.8 TB/s HBM3e) from its datasheet - what a user with
  an H100 and only a spec sheet of the H200 would predict.

Rows are split into GPU-bound and host-bound with the H100 rule
(:func:`report.regimes_of`), beside the repeatability of a second run.
"""

from __future__ import annotations

import numpy as np

from ..hardware import load_hardware
from ..hardware.defaults import datasheet_only
from ..measurements import load_measurements, shipped_measurements
from .fewshot import FewShotCase
from .predictor import RowPredictor
from .report import (H100_TARGETS, REGIMES, Scored, cut_depth_groups, cut_order_groups, judged,
                     profile_version, regimes_of, repeatability, spearman_stats)

FILES = {"graph": "h200/h200-graph", "eager": "h200/h200-eager"}
REPEATS = {"graph": "h200/h200-repeat-graph", "eager": "h200/h200-repeat-eager"}
PROFILES = {"datasheet": "datasheet-only (shipped h200)",
            "moved": "H100 fit moved (h100-sxm's fitted terms, H200 memory)"}


def moved_profile(fitted, target):
    """``fitted``'s efficiencies, occupancy and overheads with ``target``'s memory:
    the two chips share compute peaks and clocks (132 SMs, 1980 MHz boost)."""
    return fitted.model_copy(update={"name": f"{fitted.name}-moved-to-{target.name}",
                                     "memory": target.memory})


def h200_validation(predictor: RowPredictor | None = None) -> dict:
    """Both profiles' predictions of every shipped H200 row, and how repeatable the rows are."""
    predictor = predictor or RowPredictor()
    loaded = {mode: load_measurements(shipped_measurements(name)) for mode, name in FILES.items()}
    rows = loaded["graph"].rows + loaded["eager"].rows
    h200 = load_hardware("h200")
    profiles = {"datasheet": datasheet_only(h200), "moved": moved_profile(load_hardware("h100-sxm"), h200)}
    scored = {key: Scored(PROFILES[key], rows, predictor.predict(rows, p)) for key, p in profiles.items()}
    again = {mode: load_measurements(shipped_measurements(name)).rows for mode, name in REPEATS.items()}
    env = loaded["graph"].environment
    return {
        "scored": scored,
        "repeatability": {mode: repeatability(again[mode], [r for r in loaded[mode].rows if r.cut is None])
                          for mode in FILES},
        "files": {**{mode: f"{name}.json" for mode, name in FILES.items()},
                  **{f"{mode} repeat": f"{name}.json" for mode, name in REPEATS.items()}},
        "device": loaded["graph"].device,
        "environment": {k: env.get(k) for k in ("torch", "cudnn", "cpu", "timestamp")},
        "profiles": [profile_version("h200"), profile_version("h100-sxm")],
    }


def h200_summary(result: dict) -> dict:
    """Every H200 metric as plain data (what ``--json`` prints)."""
    scored = result["scored"]
    rows = next(iter(scored.values())).rows
    regimes = np.array(regimes_of(rows))
    whole = np.array([r.cut is None for r in rows])
    regime_metrics = {}
    for name, rule in REGIMES.items():
        entry = {"rule": rule}
        for key, s in scored.items():
            mask = regimes == name
            entry[key] = judged(s.metrics(mask), H100_TARGETS[name]) | {
                "whole": s.metrics(mask & whole), "trimmed": s.metrics(mask & ~whole),
                "median_ratio": float(np.median(s.predicted[mask] / s.measured[mask]))}
        regime_metrics[name] = entry
    settings = []
    for mode, batch, dtype in sorted({(r.mode, r.batch, r.dtype) for r in rows}):
        mask = np.array([(r.mode, r.batch, r.dtype) == (mode, batch, dtype) for r in rows])
        settings.append({"mode": mode, "batch": batch, "dtype": dtype, "n": int(mask.sum()),
                         "trimmed": int((mask & ~whole).sum()),
                         **{key: s.metrics(mask) for key, s in scored.items()}})
    order = {key: spearman_stats(cut_order_groups(s).values()) for key, s in scored.items()}
    order["depth"] = spearman_stats(cut_depth_groups(next(iter(scored.values()))).values())
    return {
        "data": {"files": result["files"], "rows": len(rows), "device": result["device"],
                 "models": sorted({r.model for r in rows}), "environment": result["environment"]},
        "profiles": result["profiles"], "profile_labels": PROFILES,
        "regimes": regime_metrics, "by_setting": settings,
        "repeatability": result["repeatability"], "cut_order_spearman": order,
    }


def h200_markdown(summary: dict, image: str | None = None) -> str:
    """The report's H200 section from :func:`h200_summary`'s dict."""
    from .writer import pct, num, table, targets_cell

    d = summary["data"]
    env = d["environment"]
    labels = summary["profile_labels"]
    versions = ", ".join(f"`{p['file']}` sha256 `{p['sha256']}`" for p in summary["profiles"])
    out = ["## H200: measured here, predicted without fitting to it",
           f"{d['rows']} rows of {len(d['models'])} networks measured by `scripts/measure_gpu.py` on "
           f"one {d['device']} (host: {env['cpu']}; torch {env['torch']}, cuDNN {env['cudnn']}; "
           f"{str(env['timestamp'])[:10]}): `{d['files']['graph']}` and `{d['files']['eager']}` "
           f"in `netcut/calibration/data/`. Nothing is fitted to these rows. *{labels['datasheet']}* "
           f"uses the datasheet and netcut's generic terms; *{labels['moved']}* is what the H100 "
           f"fit predicts for a chip with the H200's memory. Profiles: {versions}. The targets are "
           "the H100's, shown for comparison.",
           "Disclosure: these network rows were never fitted to, but four pricing rules were "
           "learned on this same H200 from its kernel listings and micro-benchmarks "
           "(`h200-kernels*.json`, `h200-micro.json`): a biased conv's separate bias-add pass, "
           "pooling at 0.008 of the fp32 peak per window element, three kernels per fp16 "
           "BatchNorm, no layout transforms around fp16 1x1 convs. Before them (and before "
           "trimmed rows were matched to netcut's own cut names) the H100 fit moved scored "
           "9.7% MAPE (68% within ±10%) on the GPU-bound rows, the datasheet-only profile "
           "23.9% (11%)."]
    rows = []
    for name, entry in summary["regimes"].items():
        for key in ("datasheet", "moved"):
            m = entry[key]
            rows.append([name.replace("_", "-"), labels[key], str(m["n"]), pct(m["mape"]),
                         pct(m["within_10"], 0), pct(m["whole"]["mape"]), pct(m["trimmed"]["mape"]),
                         num(m["median_ratio"]), targets_cell(m)])
    out.append(table(["regime", "profile", "n", "MAPE", "within ±10%", "MAPE whole", "MAPE trimmed",
                      "median pred/meas", "target (H100's)"], rows, {2, 3, 4, 5, 6, 7}))
    out.append("Regimes: " + "; ".join(f"*{k.replace('_', '-')}*: {v['rule']}"
                                       for k, v in summary["regimes"].items()) + ".")
    rep = summary["repeatability"]
    out.append("Repeatability (the same whole networks measured again on a fresh machine of the "
               "same kind minutes later; median |run 2 / run 1 − 1| per dtype and batch): "
               + "; ".join(f"{mode}: " + ", ".join(f"{k} {pct(v)}" for k, v in groups.items())
                           for mode, groups in rep.items()) + ".")
    rows = [[s["mode"], str(s["batch"]), s["dtype"], str(s["n"]), str(s["trimmed"]),
             pct(s["datasheet"]["mape"]), pct(s["moved"]["mape"]), pct(s["moved"]["within_10"], 0)]
            for s in summary["by_setting"]]
    out += ["### By setting", table(["mode", "batch", "dtype", "rows", "trimmed", "MAPE datasheet",
                                     "MAPE H100 fit moved", "within ±10% (moved)"], rows,
                                    {1, 3, 4, 5, 6, 7})]
    order = summary["cut_order_spearman"]
    out.append("Cut order (Spearman ρ of the trimmed networks' latencies within each network, "
               "batch, dtype and mode): " + "; ".join(
                   f"{label} median {num(order[key]['median'], 3)}, "
                   f"{pct(order[key]['share_ge_0.95'], 0)} of {order[key]['groups']} groups ≥ 0.95"
                   for key, label in (("datasheet", "datasheet-only"), ("moved", "H100 fit moved"),
                                      ("depth", "blocks kept (no profile)"))) + ".")
    if image:
        out.append(f"![H200: predicted against measured, log-log]({image})")
    return "\n\n".join(out)


def h200_png(result: dict) -> bytes:
    from .plots import Panel, scatter_png
    from .writer import h100_group

    scored = result["scored"]
    first = next(iter(scored.values()))
    groups = [h100_group(r, kind) for r, kind in zip(first.rows, regimes_of(first.rows))]
    order = ["graph (GPU-bound)", "eager b64 (GPU-bound)", "eager b64 (host-bound)",
             "eager b16 (host-bound)", "eager b1 (host-bound)"]
    return scatter_png([Panel(PROFILES[key], s.measured, s.predicted, groups, order)
                        for key, s in scored.items()],
                       f"H200 (measured here): {len(first.rows)} rows, no profile fitted to them")


#: the 3-shot split, fixed by rule before any run (as the Jetson split): one network per
#: family in the file - residual (resnet50), inverted-residual with depthwise convs
#: (mobilenet_v2), plain conv stack with biases (squeezenet1_1)
CALIBRATION_MODELS = ("resnet50", "mobilenet_v2", "squeezenet1_1")


def h200_cases() -> list[FewShotCase]:
    """``netcut calibrate``'s workflow on a new GPU: the datasheet-only ``h200`` profile
    calibrated on 3 networks' rows, judged on the other 8's - one case per mode."""
    h200 = datasheet_only(load_hardware("h200"))
    cases = []
    for mode, name in FILES.items():
        rows = load_measurements(shipped_measurements(name)).rows
        cases.append(FewShotCase(
            key=f"h200-{mode}-3shot", title=f"H200 {mode} rows measured here ({name}.json)",
            profile=h200, rows=rows, calibration_models=CALIBRATION_MODELS,
            group=f"{mode}, held out",
            note="H200: the generic Calibrator (netcut calibrate) on 3 networks' whole and "
                 "trimmed rows, from the datasheet-only profile"))
    return cases
