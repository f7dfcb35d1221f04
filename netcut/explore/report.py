"""Exploration reports: one Exploration in, Markdown + JSON + self-contained HTML out.

The same style and helpers as the planner's feasibility report
(:mod:`netcut.planner.report`): pure renderers of ``Exploration.summary()``, plots
embedded in the HTML as base64 PNGs (and written beside the Markdown), every
file written atomically. Sections: the chosen network and its gain over the best
off-the-shelf network that fits; what the exploration cost against the exhaustive
search; accuracy against predicted latency (Pareto frontier, deadline); accuracy
against depth kept; every retrained TRN; the export; the data and the weights.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone
from pathlib import Path

from ..files import atomic_write_bytes, atomic_write_text
from ..errors import InvalidInputError
from ..planner.report import _CSS, _fmt_ms, _html_table, _md_table, _png, _profile_facts
from .results import Exploration, TrialResult, pareto

__all__ = ["accuracy_plot", "cost_plot", "depth_plot", "render_html", "render_markdown",
           "report_stem", "write_report"]

TITLE = "NetCut exploration report"
_ROLE_STYLE = {  # marker, colour, size, label
    "off-the-shelf": ("s", "tab:blue", 46, "off-the-shelf network (new head)"),
    "proposed": ("o", "tab:orange", 40, "proposed TRN"),
    "exhaustive": (".", "0.6", 22, "retrained only by the exhaustive search"),
}


def _role(r: TrialResult) -> str:
    return next(x for x in ("off-the-shelf", "proposed", "exhaustive") if x in r.trial.roles)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _secs(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


# ----- plots ---------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_plot(ex: Exploration) -> bytes:
    """Validation top-1 against predicted latency: off-the-shelf networks, proposed
    TRNs (and, exhaustive, every other TRN), the Pareto frontier, the deadline, the pick."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.2))
    for role, (marker, colour, size, label) in _ROLE_STYLE.items():
        pts = [r for r in ex.results if _role(r) == role]
        if pts:
            ax.scatter([r.candidate.latency_ms for r in pts], [r.val_top1 for r in pts],
                       marker=marker, s=size, color=colour, label=label, zorder=3,
                       edgecolors="black" if role != "exhaustive" else "none", linewidths=0.4)
    if ex.confidence:  # predicted latency to its upper bound
        for r in ex.results:
            c = r.candidate
            if c.upper_ms != c.latency_ms:
                ax.plot([c.latency_ms, c.upper_ms], [r.val_top1] * 2, color="0.5", lw=0.8,
                        zorder=2)
    front = pareto(ex.results)
    if front:
        ax.step([r.candidate.latency_ms for r in front], [r.val_top1 for r in front],
                where="post", color="tab:green", lw=1.3, label="Pareto frontier", zorder=2)
    ax.axvline(ex.deadline_ms, color="crimson", ls="--", lw=1.5,
               label=f"deadline {_fmt_ms(ex.deadline_ms)}")
    chosen, base = ex.chosen(), ex.baseline()
    if chosen:
        ax.scatter([chosen.candidate.latency_ms], [chosen.val_top1], marker="*", s=320,
                   color="gold", edgecolors="black", linewidths=0.8, zorder=4,
                   label=f"chosen: {chosen.label}")
    theirs = ex.exhaustive_choice()
    if theirs and chosen and theirs.trial.ident != chosen.trial.ident:
        ax.scatter([theirs.candidate.latency_ms], [theirs.val_top1], marker="D", s=90,
                   facecolors="none", edgecolors="purple", linewidths=1.5, zorder=4,
                   label=f"exhaustive search's pick: {theirs.label}")
    if base:
        ax.annotate(f"best off-the-shelf: {base.label}", (base.candidate.latency_ms, base.val_top1),
                    fontsize=7, xytext=(6, -12), textcoords="offset points",
                    bbox=dict(fc="white", ec="none", alpha=0.8))
    classes = len(ex.data.get("classes") or []) or None
    if classes:
        ax.axhline(1 / classes, color="0.4", ls=":", lw=1, label=f"chance (1/{classes})")
    ax.set_xscale("log")
    ax.set_xlabel(f"predicted latency on {ex.hardware} (ms, log)")
    ax.set_ylabel("validation top-1")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{ex.hardware}: accuracy of the retrained networks against latency")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def depth_plot(ex: Exploration) -> bytes:
    """Validation top-1 against depth kept, one line per network, feasible cuts filled."""
    import matplotlib

    plt = _pyplot()
    cmap = matplotlib.colormaps["tab10"]
    fig, ax = plt.subplots(figsize=(9, 4.6))
    for i, network in enumerate(ex.networks):
        rs = sorted((r for r in ex.results if r.candidate.network == network),
                    key=lambda r: r.candidate.depth_fraction)
        if not rs:
            continue
        colour = cmap(i % 10)
        ax.plot([r.candidate.depth_fraction for r in rs], [r.val_top1 for r in rs], lw=1,
                color=colour, label=network)
        for feasible in (True, False):
            pts = [r for r in rs if r.feasible == feasible]
            ax.scatter([r.candidate.depth_fraction for r in pts], [r.val_top1 for r in pts],
                       s=24, color=colour if feasible else "white", edgecolors=colour, zorder=3)
    ax.set_xlabel("depth kept (share of the network's matrix FLOPs before the cut)")
    ax.set_ylabel("validation top-1")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("accuracy against depth kept (filled: meets the deadline)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def cost_plot(ex: Exploration) -> bytes:
    """Retraining time of the two searches, cumulative over their TRNs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 2.6))
    rows = [("NetCut exploration", ex.explored(), ex.plan_s, "tab:orange"),
            ("exhaustive search", ex.exhaustive(), 0.0, "0.55")]
    for y, (label, rs, start, colour) in enumerate(rows):
        left = start
        if start:
            ax.barh(y, start, left=0, color="tab:purple", height=0.5,
                    label="planning" if y == 0 else None)
        for r in rs:
            ax.barh(y, r.trial_s, left=left, color=colour, edgecolor="white", lw=0.3, height=0.5)
            left += r.trial_s
        ax.text(left, y, f"  {len(rs)} TRNs, {_secs(left)}", va="center", fontsize=8)
    ax.set_yticks([0, 1], [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds (one bar segment per retrained TRN)")
    ax.set_title("what each search costs")
    ax.set_xlim(0, 1.25 * max(ex.exploration_s(), ex.exhaustive_s() or 0, 1e-9))
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


# ----- tables shared by the renderers ----------------------------------------------------

def _facts(ex: Exploration, command: str | None) -> list[tuple[str, str]]:
    s, d = ex.settings, ex.data
    conf = f"{ex.confidence:.0%} upper bound" if ex.confidence else "point prediction"
    lr = "default of the mode" if s["lr"] is None else f"{s['lr']:g}"
    early = f", early stop after {s['patience']}" if s["patience"] else ""
    return [
        ("device", ex.hardware), ("deadline", _fmt_ms(ex.deadline_ms)), ("judged on", conf),
        ("data", f"{d.get('root')}: {len(d.get('classes') or [])} classes, "
                 f"{d.get('train_images')} train / {d.get('val_images')} val images "
                 f"({d.get('layout')})"),
        ("networks", ", ".join(ex.networks)),
        ("retraining", f"{s['mode']} mode, {s['head']} head, at most {s['epochs']} epochs"
                       f"{early}, lr {lr}, batch {s['batch_size']}, seed {s['seed']}"),
        ("candidates", f"{len(ex.explored())} retrained by the exploration (per network the "
                       f"deepest feasible {s.get('granularity', 'block')} cut and "
                       f"{s.get('runners_up', 2)} runners-up, and the off-the-shelf networks "
                       f"that fit); the exhaustive search has {ex.exhaustive_count} (every "
                       f"{s['exhaustive_granularity']} cut of every network)"),
        ("state", f"{s['state_dir']} ({sum(r.resumed for r in ex.results)} results read back, "
                  f"{sum(not r.resumed for r in ex.results)} retrained in this run)"),
        ("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("command", command or "netcut.explore.explore(...)"),
    ]


def _latency_text(ex: Exploration, r: TrialResult) -> str:
    c = r.candidate
    text = f"{c.latency_ms:.3g} ms predicted"
    if ex.confidence:
        text += f", {ex.confidence:.0%} upper bound {c.upper_ms:.3g} ms"
    return text + f" (slack {ex.deadline_ms - c.upper_ms:+.3g} ms)"


def _chosen_rows(ex: Exploration) -> list[list[str]]:
    chosen, base = ex.chosen(), ex.baseline()
    if chosen is None:
        return []
    c = chosen.candidate
    rows = [["network", f"{c.network}, cut at {c.cut}" + (" (whole network)" if c.whole else "")],
            ["depth kept", f"{c.depth_fraction:.2f} of the matrix FLOPs, {c.channels} channels"],
            ["latency", _latency_text(ex, chosen)],
            ["validation top-1", _pct(chosen.val_top1) + f" (loss {chosen.val_loss:.3f}, best "
                                 f"epoch {chosen.best_epoch + 1} of {chosen.epochs_run})"]]
    if chosen.label in ex.test:
        rows.append(["test top-1", _pct(ex.test[chosen.label])])
    if base is None:
        rows.append(["best off-the-shelf", "none meets the deadline: only a TRN does"])
    else:
        text = f"{base.label}: {_pct(base.val_top1)}"
        if base.label in ex.test:
            text += f" (test {_pct(ex.test[base.label])})"
        rows.append(["best off-the-shelf", text])
        gain = ex.gain()
        rows.append(["relative gain", f"{100 * gain:+.2f}% (NetCut reports up to +10.43%)"
                     if gain is not None else "n/a"])
    return rows


def _cost_rows(ex: Exploration) -> tuple[list[str], list[list[str]]]:
    head = ["search", "networks retrained", "retraining", "planning", "total", "pick", "top-1"]
    explored = ex.explored()
    retrain_s = sum(r.trial_s for r in explored)
    chosen = ex.chosen()
    rows = [["NetCut exploration", str(len(explored)), _secs(retrain_s), _secs(ex.plan_s),
             _secs(ex.exploration_s()), chosen.label if chosen else "none",
             _pct(chosen.val_top1) if chosen else "n/a"]]
    if ex.exhaustive_run:
        theirs = ex.exhaustive_choice()
        rows.append(["exhaustive search", str(len(ex.exhaustive())), _secs(ex.exhaustive_s()),
                     "-", _secs(ex.exhaustive_s()), theirs.label if theirs else "none",
                     _pct(theirs.val_top1) if theirs else "n/a"])
    else:
        rows.append(["exhaustive search (not run)", str(ex.exhaustive_count), "-", "-", "-",
                     "-", "-"])
    return head, rows


def _cost_note(ex: Exploration) -> str:
    n, total = len(ex.explored()), ex.exhaustive_count
    text = (f"The exploration retrained {n} of the {total} networks an exhaustive search "
            f"would retrain ({total / max(n, 1):.1f}x fewer).")
    comp = ex.comparison()
    if comp:
        same = ("Both searches pick the same network." if comp["same_network"] else
                f"The exhaustive search picks {comp['exhaustive_choice']} "
                f"({_pct(comp['exhaustive_val_top1'])}); the exploration's pick is "
                f"{'as accurate or more' if comp['at_least_as_accurate'] else 'less accurate'} "
                f"({100 * comp['accuracy_gap']:+.1f} points).")
        cpu = (f"; in CPU time {_secs(comp['exhaustive_cpu_s'])} against "
               f"{_secs(comp['exploration_cpu_s'])}, {comp['speedup_cpu']:.1f}x"
               if comp.get("speedup_cpu") else "")
        text += (f" Retraining everything took {_secs(comp['exhaustive_s'])} against the "
                 f"exploration's {_secs(comp['exploration_s'])}: {comp['speedup']:.1f}x faster"
                 f"{cpu} (NetCut reports 27x). {same}")
    else:
        text += " Run with --exhaustive to retrain them all and measure the speedup."
    return text


def _result_rows(ex: Exploration) -> tuple[list[str], list[list[str]]]:
    head = ["network", "cut", "retrained as", "depth kept", "latency (ms)"]
    if ex.confidence:
        head.append(f"{ex.confidence:.0%} bound (ms)")
    head += ["slack (ms)", "val top-1", "val loss", "epochs", "time", "from"]
    chosen = ex.chosen()
    rows = []
    for r in sorted(ex.results, key=lambda r: (not r.trial.explored, r.candidate.latency_ms)):
        c = r.candidate
        mark = " *" if chosen and r.trial.ident == chosen.trial.ident else ""
        row = [c.network, c.cut + (" (whole)" if c.whole else "") + mark,
               ", ".join(r.trial.roles), f"{c.depth_fraction:.2f}", f"{c.latency_ms:.3g}"]
        if ex.confidence:
            row.append(f"{c.upper_ms:.3g}")
        row += [f"{ex.deadline_ms - c.upper_ms:+.3g}", _pct(r.val_top1), f"{r.val_loss:.3f}",
                str(r.epochs_run), _secs(r.trial_s), "state" if r.resumed else "this run"]
        rows.append(row)
    return head, rows


def _export_rows(ex: Exploration) -> list[list[str]]:
    e = ex.export or {}
    rows = []
    for key in ("torchscript", "onnx", "card"):
        if e.get(key):
            rows.append([key, e[key]])
    if e.get("onnx_skipped"):
        rows.append(["onnx", f"skipped: {e['onnx_skipped']}"])
    return rows


def _data_rows(ex: Exploration) -> tuple[list[str], list[list[str]]]:
    counts = ex.data.get("counts") or {}
    test = (ex.data.get("test") or {}).get("counts") or {}
    head = ["class", "train", "val"] + (["test"] if test else [])
    rows = [[c, str(counts.get("train", {}).get(c, 0)), str(counts.get("val", {}).get(c, 0))]
            + ([str(test.get(c, 0))] if test else []) for c in ex.data.get("classes") or []]
    return head, rows


def _weights_rows(ex: Exploration) -> list[list[str]]:
    return [[name, w["source"], w["sha256"][:16]]
            for name, w in (ex.settings.get("weights") or {}).items()]


def _nothing_off_the_shelf(ex: Exploration) -> str | None:
    if ex.baseline() is not None:
        return None
    return ("No off-the-shelf network meets the deadline: without trimming there would be "
            "no network to deploy at all.")


# ----- renderers -------------------------------------------------------------------------

def render_markdown(ex: Exploration, images: dict[str, str], command: str | None = None) -> str:
    lines = [f"# {TITLE}", ""] + [f"- **{k}**: {v}" for k, v in _facts(ex, command)] + [""]
    lines += ["Latencies are predictions of netcut's analytical estimator from the device's "
              "hardware profile (see `reports/validation.md` for its measured error); "
              "accuracies are measured on the validation images after retraining.", ""]
    lines += ["## Chosen network", ""]
    rows = _chosen_rows(ex)
    lines += [_md_table(["", ""], rows) if rows else "_none_", ""]
    note = _nothing_off_the_shelf(ex)
    if note:
        lines += [f"**{note}**", ""]
    lines += ["## Exploration cost", "", _cost_note(ex), ""]
    head, rows = _cost_rows(ex)
    lines += [_md_table(head, rows), ""]
    if "cost" in images:
        lines += [f"![cost]({images['cost']})", ""]
    lines += ["## Accuracy against predicted latency", ""]
    for key in ("accuracy", "depth"):
        if key in images:
            lines += [f"![{key}]({images[key]})", ""]
    lines += ["## Retrained networks", "", "`*` marks the chosen network.", ""]
    head, rows = _result_rows(ex)
    lines += [_md_table(head, rows), ""]
    rows = _export_rows(ex)
    if rows:
        lines += ["## Export", "", _md_table(["file", "path"], rows), ""]
    lines += [f"## Device: {ex.hardware}", "", _profile_facts(ex.hardware).get("description", ""), ""]
    head, rows = _data_rows(ex)
    lines += ["## Data", "", _md_table(head, rows), ""]
    lines += ["## Pretrained weights", "", _md_table(["network", "source", "sha256"],
                                                     _weights_rows(ex)), ""]
    return "\n".join(lines)


def _img(pngs: dict[str, bytes], key: str, alt: str) -> str:
    if key not in pngs:
        return ""
    data = base64.b64encode(pngs[key]).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def render_html(ex: Exploration, pngs: dict[str, bytes], command: str | None = None) -> str:
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>netcut explore: {html.escape(_fmt_ms(ex.deadline_ms))} on "
             f"{html.escape(ex.hardware)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{TITLE}</h1>",
             _html_table(["", ""], [list(f) for f in _facts(ex, command)], "facts"),
             "<p class='muted'>Latencies are predictions of netcut's analytical estimator "
             "from the device's hardware profile (their measured error is in "
             "reports/validation.md); accuracies are measured on the validation images "
             "after retraining.</p>"]
    parts.append("<h2>Chosen network</h2>")
    rows = _chosen_rows(ex)
    parts.append(_html_table(["", ""], rows, "facts"))
    note = _nothing_off_the_shelf(ex)
    if note:
        parts.append(f"<p class='warn'>{html.escape(note)}</p>")
    parts.append(f"<h2>Exploration cost</h2><p>{html.escape(_cost_note(ex))}</p>")
    head, rows = _cost_rows(ex)
    parts.append(_html_table(head, rows))
    parts.append(_img(pngs, "cost", "retraining time of the two searches"))
    parts.append("<h2>Accuracy against predicted latency</h2>")
    parts.append(_img(pngs, "accuracy", "accuracy against predicted latency"))
    parts.append(_img(pngs, "depth", "accuracy against depth kept"))
    head, rows = _result_rows(ex)
    parts.append("<h2>Retrained networks</h2><p class='muted'>* marks the chosen network.</p>"
                 + _html_table(head, rows))
    rows = _export_rows(ex)
    if rows:
        parts.append("<h2>Export</h2>" + _html_table(["file", "path"], rows))
    facts = _profile_facts(ex.hardware)
    parts.append(f"<h2>Device: {html.escape(ex.hardware)}</h2>"
                 f"<p>{html.escape(facts.get('description', ''))}</p>")
    sources = [[k, v] for k, v in facts.get("sources", {}).items()]
    if sources:
        parts.append("<details><summary>Where the profile's numbers come from</summary>"
                     + _html_table(["field", "source"], sources) + "</details>")
    head, rows = _data_rows(ex)
    parts.append("<h2>Data</h2>" + _html_table(head, rows))
    parts.append("<h2>Pretrained weights</h2>"
                 + _html_table(["network", "source", "sha256"], _weights_rows(ex)))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_report(ex: Exploration, path: str | Path, command: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.html``, ``<stem>.md`` (+ ``<stem>_files/*.png``) and ``<stem>.json``.

    ``path`` may name the HTML file or a stem; its folder must exist and be writable.
    """
    path = Path(path)
    stem = report_stem(path)
    folder = stem.parent if str(stem.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"cannot write the report to {path}: folder {folder} does not exist")
    pngs = {"accuracy": accuracy_plot(ex), "depth": depth_plot(ex)}
    if ex.exhaustive_run:
        pngs["cost"] = cost_plot(ex)
    written: dict[str, Path] = {}
    written["html"] = atomic_write_text(_beside(stem, ".html"), render_html(ex, pngs, command))
    written["json"] = atomic_write_text(_beside(stem, ".json"),
                                        json.dumps(ex.summary(), indent=1, default=float))
    images_dir = folder / f"{stem.name}_files"
    try:
        images_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {images_dir}: {exc.strerror}") from None
    images = {}
    for key, data in pngs.items():
        file = atomic_write_bytes(images_dir / f"{key}.png", data)
        images[key] = f"{images_dir.name}/{file.name}"
    written["md"] = atomic_write_text(_beside(stem, ".md"), render_markdown(ex, images, command))
    return written


def report_stem(path: str | Path) -> Path:
    """``reports/x-0.5ms.html`` -> ``reports/x-0.5ms``: only a report suffix is taken
    off (``Path.with_suffix`` would take ``.5ms`` off a stem without one)."""
    path = Path(path)
    if path.suffix in (".html", ".md", ".json"):
        return path.with_name(path.name[: -len(path.suffix)])
    return path


def _beside(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)
