"""Deadline-feasibility reports: one Plan in, Markdown + JSON + self-contained HTML out.

Pure renderers (STYLE habit 4): they read ``Plan.summary()`` and the plan's
estimates, compute nothing new, and every file is written atomically. The HTML
embeds its plots as base64 PNGs, so it is one file people can mail around.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from datetime import datetime, timezone
from pathlib import Path

from ..files import atomic_write_bytes, atomic_write_text
from ..errors import InvalidInputError
from ..hardware import load_hardware
from .plan import Candidate, Plan

MAX_CURVES = 12  # networks drawn per device in the depth plot (the best ones)


def _fmt_ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def _profile_facts(name: str) -> dict:
    try:
        p = load_hardware(name)
    except Exception:  # a profile object passed in directly: its name may not resolve
        return {"name": name, "description": "", "sources": {}, "calibration": None}
    return {"name": p.name, "description": p.description, "kind": p.kind,
            "sources": dict(p.sources), "calibration": p.calibration}


# ----- plots ---------------------------------------------------------------------------

def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def _colours(plan: Plan) -> dict[str, tuple]:
    """One colour per network for the whole plan, so curves match across devices."""
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return {n: cmap(i % 20) for i, n in enumerate(plan.networks)}


def depth_plot(plan: Plan, hardware: str) -> bytes:
    """Latency against depth kept, one curve per network, with the deadline line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list[Candidate]] = {}
    for c in plan.candidates:
        if c.hardware == hardware:
            groups.setdefault(c.network, []).append(c)
    # draw the networks whose deepest feasible cut keeps the most, then the fastest
    def rank(item):
        ok = [c.depth_fraction for c in item[1] if plan.is_feasible(c)]
        return (-(max(ok) if ok else -1), min(c.latency_ms for c in item[1]))

    chosen = sorted(groups.items(), key=rank)[:MAX_CURVES]
    colours = _colours(plan)
    fig, ax = plt.subplots(figsize=(9, 5))
    for network, cands in chosen:
        cands = sorted(cands, key=lambda c: c.cut_index)
        x = [c.depth_fraction for c in cands]
        line, = ax.plot(x, [c.latency_ms for c in cands], marker=".", lw=1.2, label=network,
                        color=colours[network])
        if any(c.upper_ms != c.latency_ms for c in cands):
            ax.fill_between(x, [c.latency_ms for c in cands], [c.upper_ms for c in cands],
                            color=line.get_color(), alpha=0.15)
    ax.axhline(plan.deadline_ms, color="crimson", ls="--", lw=1.5,
               label=f"deadline {_fmt_ms(plan.deadline_ms)}")
    ax.set_yscale("log")
    ax.set_xlabel("depth kept (share of the network's matrix FLOPs before the cut)")
    ax.set_ylabel("predicted latency (ms, log)")
    ax.set_title(f"{hardware}: latency of every cut, batch {plan.batch}, {plan.dtype}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)


def pareto_plot(plan: Plan, hardware: str) -> bytes:
    """Every candidate on one device; the feasible Pareto frontier highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = [c for c in plan.candidates if c.hardware == hardware]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ok = [c for c in cands if plan.is_feasible(c)]
    bad = [c for c in cands if not plan.is_feasible(c)]
    if bad:
        ax.scatter([c.latency_ms for c in bad], [c.depth_fraction for c in bad], s=10,
                   color="lightgray", label="misses the deadline")
    ax.scatter([c.latency_ms for c in ok], [c.depth_fraction for c in ok], s=12,
               color="tab:blue", label="feasible")
    front = plan.pareto(hardware)
    if front:
        ax.plot([c.latency_ms for c in front], [c.depth_fraction for c in front], "-o",
                color="tab:orange", ms=5, label="Pareto frontier")
        for c in front[-3:]:
            ax.annotate(f"{c.network}@{c.cut}", (c.latency_ms, c.depth_fraction), fontsize=7,
                        xytext=(-6, 6), textcoords="offset points", ha="right",
                        bbox=dict(fc="white", ec="none", alpha=0.8))
    ax.axvline(plan.deadline_ms, color="crimson", ls="--", lw=1.5, label="deadline")
    ax.set_xscale("log")
    ax.set_xlabel("predicted latency (ms, log)")
    ax.set_ylabel("depth kept")
    ax.set_title(f"{hardware}: depth kept against latency")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


# ----- text ----------------------------------------------------------------------------

def _params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k"


def _cand_row(plan: Plan, c: Candidate) -> list[str]:
    row = [c.network, c.cut + (" (whole)" if c.whole else ""), f"{c.depth_fraction:.2f}",
           f"{c.latency_ms:.2f}"]
    if plan.confidence:
        row.append(f"{c.upper_ms:.2f}")
    return row + [f"{plan.deadline_ms - c.upper_ms:+.2f}", _params(c.params_kept)]


def _cand_head(plan: Plan) -> list[str]:
    head = ["network", "cut", "depth kept", "latency (ms)"]
    if plan.confidence:
        head.append(f"{plan.confidence:.0%} bound (ms)")
    return head + ["slack (ms)", "params kept"]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _sections(plan: Plan) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(device, title, header, rows) tables shared by the Markdown and HTML renderers."""
    out = []
    for hw in plan.hardware:
        props = [c for c in plan.proposals() if c.hardware == hw]
        props.sort(key=lambda c: (-c.depth_fraction, c.latency_ms))
        shelf = [c for c in plan.off_the_shelf() if c.hardware == hw]
        shelf.sort(key=lambda c: c.latency_ms)
        front = plan.pareto(hw)
        head = _cand_head(plan)
        out.append((hw, "Off-the-shelf networks that meet the deadline", head,
                    [_cand_row(plan, c) for c in shelf]))
        out.append((hw, "Proposed TRNs to retrain (deepest feasible cut and runners-up)",
                    head, [_cand_row(plan, c) for c in props]))
        out.append((hw, "Pareto frontier (latency against depth kept)", head,
                    [_cand_row(plan, c) for c in front]))
        deepest = {}
        for c in props:
            if c.network not in deepest or c.cut_index > deepest[c.network].cut_index:
                deepest[c.network] = c
        rows = []
        for c in sorted(deepest.values(), key=lambda c: -c.depth_fraction)[:15]:
            b = plan.breakdown(c)
            share = b["bound_share"]
            slow = ", ".join(f"{n} {_fmt_ms(ms)}" for n, ms in b["slowest_blocks"][:3])
            rows.append([f"{c.network}@{c.cut}", f"{share['compute']:.0%}", f"{share['memory']:.0%}",
                         f"{share['overhead']:.0%}", slow])
        out.append((hw, "What bounds the proposed TRNs (share of their predicted time)",
                    ["TRN", "compute", "memory", "overhead", "slowest blocks"], rows))
    return out


def _nothing_feasible(plan: Plan, hw: str) -> str | None:
    if any(c.hardware == hw for c in plan.feasible()):
        return None
    f = plan.fastest(hw)
    return (f"Nothing meets {_fmt_ms(plan.deadline_ms)} on {hw}. The fastest candidate is "
            f"{f.network} cut at {f.cut} ({_fmt_ms(f.upper_ms)}): a deadline of at least "
            f"{_fmt_ms(f.upper_ms)} would admit it.") if f else None


def _header_facts(plan: Plan, command: str | None) -> list[tuple[str, str]]:
    conf = f"{plan.confidence:.0%} upper bound" if plan.confidence else "point prediction"
    return [("deadline", _fmt_ms(plan.deadline_ms)), ("batch", str(plan.batch)),
            ("dtype", plan.dtype), ("mode", plan.mode or "profile default"),
            ("judged on", conf), ("new head", f"global pool + linear to {plan.num_classes} classes"),
            ("networks", f"{len(plan.networks)} planned, {len(plan.skipped)} skipped"),
            ("candidates", f"{len(plan.candidates)} (network x cut x device)"),
            ("generated", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
            ("command", command or "netcut.plan(...)")]


def render_markdown(plan: Plan, images: dict[str, str], command: str | None = None) -> str:
    lines = ["# Deadline feasibility report", ""]
    lines += [f"- **{k}**: {v}" for k, v in _header_facts(plan, command)]
    lines += ["", "Latencies are predictions of netcut's analytical estimator from each "
              "device's hardware profile; their error on measured devices is in "
              "`reports/validation.md`. Depth kept stands in for accuracy until the "
              "proposed TRNs are retrained.", ""]
    sections = _sections(plan)
    for hw in plan.hardware:
        facts = _profile_facts(hw)
        lines += [f"## {hw}", "", facts.get("description", ""), ""]
        calib = facts.get("calibration")
        lines.append(f"- calibration: {'fitted, ' + json.dumps(calib) if calib else 'none (datasheet profile; no prediction interval)'}")
        for key, src in facts.get("sources", {}).items():
            lines.append(f"- source of `{key}`: {src}")
        lines.append("")
        note = _nothing_feasible(plan, hw)
        if note:
            lines += [f"**{note}**", ""]
        for key in (f"depth:{hw}", f"pareto:{hw}"):
            if key in images:
                lines += [f"![{key}]({images[key]})", ""]
        for device, title, head, rows in sections:
            if device == hw:
                lines += [f"### {title}", "", _md_table(head, rows) if rows else "_none_", ""]
    if len(plan.hardware) > 1:
        lines += ["## Feasibility matrix (deepest feasible cut, slack)", ""]
        head = ["network"] + plan.hardware
        rows = []
        for network, per_hw in plan.matrix().items():
            rows.append([network] + [
                f"{v['cut']} ({v['slack_ms']:+.3g} ms)" if v["cut"] else f"none (fastest {_fmt_ms(v['fastest_ms'])})"
                for v in (per_hw[h] for h in plan.hardware)])
        lines += [_md_table(head, rows), ""]
    if plan.skipped:
        lines += ["## Networks skipped", ""] + [f"- {k}: {v}" for k, v in plan.skipped.items()] + [""]
    if plan.unsupported:
        lines += ["## Unsupported ops (priced as plain copies)", ""]
        lines += [f"- {k}: {v}" for k, v in plan.unsupported.items()] + [""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3rem}h2{margin-top:2.2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}th{background:#f6f8fa}
tr:nth-child(even) td{background:#fbfcfd}.facts td:first-child{font-weight:600}
.warn{background:#fff4e5;border-left:4px solid #e67e22;padding:.6rem 1rem}
img{max-width:100%;border:1px solid #eaeef2;margin:.4rem 0}.muted{color:#57606a;font-size:.85rem}
details{margin:.4rem 0 1rem}.scroll{overflow-x:auto}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}"""


_NUMERIC = re.compile(r"^[+-]?[0-9.,]+( ?(ms|M|k|%))?( \\(.*\\))?$")


def _html_table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table in a horizontally scrolling box; numbers right-aligned."""
    if not rows:
        return "<p><em>none</em></p>"
    thead = ("<thead><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in head) + "</tr></thead>"
             if any(head) else "")
    def cell(x: str) -> str:
        klass = " class='num'" if _NUMERIC.match(x) else ""
        return f"<td{klass}>{html.escape(x)}</td>"
    body = "".join("<tr>" + "".join(cell(x) for x in r) + "</tr>" for r in rows)
    return f"<div class='scroll'><table class='{cls}'>{thead}<tbody>{body}</tbody></table></div>"


def render_html(plan: Plan, pngs: dict[str, bytes], command: str | None = None) -> str:
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>netcut: deadline {html.escape(_fmt_ms(plan.deadline_ms))} on "
             f"{html.escape(', '.join(plan.hardware))}</title><style>{_CSS}</style></head><body>",
             "<h1>Deadline feasibility report</h1>",
             _html_table(["", ""], [[k, v] for k, v in _header_facts(plan, command)], "facts"),
             "<p class='muted'>Latencies are predictions of netcut's analytical estimator "
             "from each device's hardware profile; their measured error is in "
             "reports/validation.md. Depth kept stands in for accuracy until the proposed "
             "TRNs are retrained.</p>"]
    if len(plan.hardware) > 1:
        rows = [[n] + [f"{v['cut']} ({v['slack_ms']:+.2f} ms)" if v["cut"]
                       else f"none (fastest {_fmt_ms(v['fastest_ms'])})"
                       for v in (per[h] for h in plan.hardware)]
                for n, per in plan.matrix().items()]
        parts.append("<h2>Feasibility matrix: deepest feasible cut (slack)</h2>"
                     + _html_table(["network"] + plan.hardware, rows))
    sections = _sections(plan)
    for hw in plan.hardware:
        facts = _profile_facts(hw)
        parts.append(f"<h2>{html.escape(hw)}</h2><p>{html.escape(facts.get('description', ''))}</p>")
        calib = facts.get("calibration")
        parts.append("<p>Calibration: " + (html.escape(json.dumps(calib)) if calib else
                     "none (datasheet profile; no prediction interval)") + "</p>")
        sources = [[k, v] for k, v in facts.get("sources", {}).items()]
        parts.append("<details><summary>Where the profile's numbers come from</summary>"
                     + _html_table(["field", "source"], sources) + "</details>")
        note = _nothing_feasible(plan, hw)
        if note:
            parts.append(f"<p class='warn'>{html.escape(note)}</p>")
        for key, alt in ((f"depth:{hw}", "latency against depth"), (f"pareto:{hw}", "Pareto")):
            if key in pngs:
                data = base64.b64encode(pngs[key]).decode()
                parts.append(f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>")
        for device, title, head, rows in sections:
            if device == hw:
                parts.append(f"<h3>{html.escape(title)}</h3>" + _html_table(head, rows))
    if plan.skipped:
        parts.append("<h2>Networks skipped</h2>" + _html_table(
            ["network", "why"], [[k, v] for k, v in plan.skipped.items()]))
    if plan.unsupported:
        parts.append("<h2>Unsupported ops (priced as plain copies)</h2>" + _html_table(
            ["network", "ops"], [[k, json.dumps(v)] for k, v in plan.unsupported.items()]))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(plan: Plan, path: str | Path, command: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.html``, ``<stem>.md`` (+ ``<stem>_files/*.png``) and ``<stem>.json``.

    ``path`` may name the HTML file or a stem; its folder must exist and be writable.
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".html", ".md", ".json") else path
    folder = stem.parent if str(stem.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"cannot write the report to {path}: folder {folder} does not exist")
    pngs: dict[str, bytes] = {}
    for hw in plan.hardware:
        pngs[f"depth:{hw}"] = depth_plot(plan, hw)
        pngs[f"pareto:{hw}"] = pareto_plot(plan, hw)
    images_dir = folder / f"{stem.name}_files"
    images: dict[str, str] = {}
    written: dict[str, Path] = {}
    html_text = render_html(plan, pngs, command)
    json_text = json.dumps(plan.summary(), indent=1, default=float)
    written["html"] = atomic_write_text(stem.with_suffix(".html"), html_text)
    written["json"] = atomic_write_text(stem.with_suffix(".json"), json_text)
    try:
        images_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {images_dir}: {exc.strerror}") from None
    for key, data in pngs.items():
        file = images_dir / (key.replace(":", "-") + ".png")
        atomic_write_bytes(file, data)
        images[key] = f"{images_dir.name}/{file.name}"
    written["md"] = atomic_write_text(stem.with_suffix(".md"), render_markdown(plan, images, command))
    return written
