"""The HTML report renders in a real browser: headless Chromium from Debian's packages.

Runs scripts/check_report_browser.py's functions in-process. The Chromium test skips,
saying why, where Chromium can be neither found nor fetched (no apt, no network); the
first run on a machine fetches it into ~/.cache/netcut/chromium (about 120 MB, well
under a minute here), later runs take about 25 s, most of it tracing the two networks.
"""

import base64
import importlib.util
import re
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_report_browser.py"


def _load():
    spec = importlib.util.spec_from_file_location("check_report_browser", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


crb = _load()


def _png(path: Path, size, fill=(255, 255, 255), box=None, box_fill=(0, 0, 0)):
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, fill)
    if box:
        ImageDraw.Draw(im).rectangle(box, fill=box_fill)
    im.save(path)
    return path


# ----- the checks themselves, no browser needed ---------------------------------------------

def test_a_blank_or_wrong_sized_screenshot_fails(tmp_path):
    blank = _png(tmp_path / "blank.png", (200, 300))
    problems, _ = crb.check_png(blank, 200, 300)
    assert any("nearly blank" in p for p in problems)
    problems, _ = crb.check_png(blank, 200, 400)
    assert any("expected 200x400" in p for p in problems)
    not_png = tmp_path / "x.png"
    not_png.write_text("no image here")
    assert crb.check_png(not_png, 200, 300)[0]


def test_a_plot_box_without_colour_fails(tmp_path):
    # plenty of grey ink (tables), but the plot's box holds no coloured pixel
    shot = _png(tmp_path / "grey.png", (200, 300), box=(0, 0, 199, 100), box_fill=(90, 90, 90))
    problems, stats = crb.check_png(shot, 200, 300, boxes=[[0, 150, 150, 100]])
    assert stats["plots_checked"] == 1
    assert any("plot 1" in p and "empty" in p for p in problems)
    # the same box with a coloured curve in it passes
    shot = _png(tmp_path / "plot.png", (200, 300), box=(10, 160, 140, 240), box_fill=(255, 127, 14))
    assert crb.check_png(shot, 200, 300, boxes=[[0, 150, 150, 100]])[0] == []


def test_layout_check_wants_two_decoded_plots_per_device():
    good_img = {"src": "data:image/png;base64,", "complete": True, "natural": [763, 501],
                "box": [50, 700, 765, 501]}
    layout = {"images": [good_img] * 4, "stylesheets": 20, "h1": ["Deadline feasibility report"],
              "h2": ["a", "b", "Feasibility matrix"], "tables": 12}
    assert crb.check_layout(layout, ["a", "b"]) == []
    broken = dict(good_img, natural=[0, 0])
    problems = crb.check_layout(dict(layout, images=[good_img, broken], stylesheets=0, h2=["a"]),
                                ["a", "b"])
    text = "; ".join(problems)
    for expected in ("2 <img> elements, expected 4", "image 2 of 2 did not decode", "unstyled",
                     "no <h2> section for b"):
        assert expected in text


# ----- the real thing ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    try:
        return crb.find_chromium(install=True)
    except crb.ChromiumUnavailable as exc:
        pytest.skip(f"no headless Chromium here: {exc}")


def test_report_renders_in_headless_chromium(chromium, tmp_path, monkeypatch):
    monkeypatch.setenv("NETCUT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "shot.png"
    work = tmp_path / "work"
    work.mkdir()
    res = crb.run_check(out, 1000, 1800, work=work)
    assert res.stats["size"] == (1000, 1800)
    assert res.stats["plots_checked"] >= 1 and res.stats["ink"] > 0.02
    assert len(res.layout["images"]) == 4
    assert all(i["natural"][0] > 100 for i in res.layout["images"])
    assert [h for h in res.layout["h2"] if h in crb.DEVICES] == crb.DEVICES  # in plan order

    # the same check fails on that report with its plots broken
    html = work / "plan.html"
    junk = base64.b64encode(b"not a png" * 50).decode()
    broken = tmp_path / "broken.html"
    broken.write_text(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+",
                             "data:image/png;base64," + junk, html.read_text()))
    with pytest.raises(crb.CheckFailed, match="did not decode"):
        crb.run_check(tmp_path / "broken.png", 1000, 1800, html=broken, work=work)


# ----- the exploration report (netcut explore) ---------------------------------------------

#: injected first into <head>: records every error event (script errors and, in the
#: capture phase, resources that fail to load) before the page's own content runs
_CATCHER = """<script>window.__netcutErrors = [];
addEventListener('error', e => { const t = e.target;
  __netcutErrors.push(t && t !== window ? 'failed to load <' + t.tagName.toLowerCase() + '> '
                      + (t.getAttribute('src') || t.getAttribute('href') || '').slice(0, 60)
                      : String(e.message)); }, true);</script>"""

#: injected before </body>: after the load event, what the page shows
_EXPLORE_PROBE = """<script>addEventListener('load', () => {
  const section = title => { const h = [...document.querySelectorAll('h2')]
      .find(h => h.textContent === title);
    return h && h.nextElementSibling ? h.nextElementSibling.innerText : null; };
  const probe = {
    images: [...document.images].map(i => { const r = i.getBoundingClientRect();
      return {src: i.getAttribute('src').slice(0, 22), alt: i.alt, complete: i.complete,
              natural: [i.naturalWidth, i.naturalHeight],
              box: [r.left + scrollX, r.top + scrollY, r.width, r.height]}; }),
    h1: [...document.querySelectorAll('h1')].map(h => h.textContent),
    h2: [...document.querySelectorAll('h2')].map(h => h.textContent),
    stylesheets: [...document.styleSheets].reduce((n, s) => n + s.cssRules.length, 0),
    tables: document.querySelectorAll('table').length,
    chosen: section('Chosen network'), errors: window.__netcutErrors || null};
  const pre = document.createElement('pre');
  pre.id = 'netcut-explore-probe'; pre.textContent = JSON.stringify(probe);
  document.body.appendChild(pre);
});</script>"""


def browse(chromium, html_path: Path, work: Path, width: int = 1100, height: int = 1800) -> dict:
    """Load ``html_path`` in headless Chromium: what the page shows after its load event,
    the error events it saw (``errors``) and the console messages Chromium logged
    (``console``: every ``CONSOLE`` line of its log; a report runs no script of its own,
    so any message at all is a problem)."""
    import html as _html
    import json

    text = html_path.read_text(encoding="utf-8")
    assert re.search(r"<head[^>]*>", text) and "</body>" in text, f"{html_path}: not a whole page"
    head = re.search(r"<head[^>]*>(<meta charset=[^>]*>)?", text)
    probed = (text[:head.end()] + _CATCHER + text[head.end():]).replace(
        "</body>", _EXPLORE_PROBE + "</body>", 1)
    page = work / (html_path.stem + ".probe.html")  # the report's images are embedded
    page.write_text(probed, encoding="utf-8")
    cmd = crb._chromium_cmd(chromium, work / "profile-probe", width, height) + [
        "--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri()]
    res = crb._run(cmd, timeout=120, env=chromium.env())
    m = re.search(r'<pre id="netcut-explore-probe">(.*?)</pre>', res.stdout, re.S)
    assert res.returncode == 0 and m, f"chromium gave no layout: {crb._last_error(res.stderr)}"
    probe = json.loads(_html.unescape(m.group(1)))
    probe["console"] = [ln for ln in res.stderr.splitlines() if re.search(r":CONSOLE[:(]", ln)]
    return probe


def _exploration(tmp_path: Path):
    """A small exploration (three networks, an exhaustive search, a test folder, an
    export) built from made-up results: the report only renders them."""
    from netcut.explore.candidates import Trial
    from netcut.explore.results import Exploration, TrialResult
    from netcut.planner.plan import Candidate

    hw, deadline = "epyc-milan-2c", 1.2
    rows = [  # network, cut, index, depth, latency, val top-1, roles
        ("resnet18", "avgpool", 9, 1.0, 1.05, 0.74, ("off-the-shelf", "proposed", "exhaustive")),
        ("resnet18", "layer4.0", 8, 0.8, 0.95, 0.81, ("proposed", "exhaustive")),
        ("resnet18", "layer3.1", 7, 0.6, 0.70, 0.85, ("proposed", "exhaustive")),
        ("resnet18", "layer2.1", 5, 0.4, 0.45, 0.77, ("exhaustive",)),
        ("mobilenet_v2", "features.18", 19, 1.0, 1.90, 0.88, ("exhaustive",)),
        ("mobilenet_v2", "features.13", 13, 0.7, 1.10, 0.79, ("proposed", "exhaustive")),
        ("mobilenet_v2", "features.6", 6, 0.3, 0.50, 0.62, ("exhaustive",)),
    ]
    results = []
    for i, (network, cut, index, depth, latency, acc, roles) in enumerate(rows):
        c = Candidate(network=network, hardware=hw, cut=cut, cut_index=index,
                      depth_fraction=depth, channels=64 * (i + 1), params_kept=10_000 * index,
                      flops_kept=1e6 * index, latency_ms=latency, upper_ms=latency,
                      whole=cut in ("avgpool", "features.18"))
        results.append(TrialResult(
            trial=Trial(c, network, index, roles), key=f"k{i}", feasible=latency <= deadline,
            val_top1=acc, val_loss=1 - acc, best_epoch=1, epochs_run=3, stopped_early=False,
            fit_s=20.0 + i, trial_s=21.0 + i, trainable_params=650, resumed=False))
    classes = ["5", "6", "7", "8", "9"]
    ex = Exploration(
        deadline_ms=deadline, hardware=hw, confidence=None, calibrated=False,
        networks=["resnet18", "mobilenet_v2"],
        settings={"mode": "head", "head": "linear", "epochs": 3, "patience": 3, "lr": None,
                  "batch_size": 32, "seed": 0, "exhaustive_granularity": "layer",
                  "state_dir": str(tmp_path / "state"),
                  "weights": {"resnet18": {"source": "ckpt/resnet18.pt", "sha256": "ab" * 32},
                              "mobilenet_v2": {"source": "ckpt/mnv2.pt", "sha256": "cd" * 32}}},
        data={"root": str(tmp_path / "digits"), "classes": classes, "train_images": 150,
              "val_images": 250, "layout": "train/ + val/",
              "counts": {"train": {c: 30 for c in classes}, "val": {c: 50 for c in classes}}},
        results=results, exhaustive_run=True, exhaustive_count=len(rows), plan_s=2.5)
    ex.test = {results[2].label: 0.83, results[0].label: 0.71}
    ex.export = {"torchscript": str(tmp_path / "export" / "model.ts"), "onnx": None,
                 "onnx_skipped": "the onnx package is not installed",
                 "card": str(tmp_path / "export" / "card.json")}
    return ex


def test_explore_report_renders_in_headless_chromium(chromium, tmp_path):
    from netcut.explore.report import write_report

    ex = _exploration(tmp_path)
    chosen = ex.chosen()
    assert chosen.candidate.cut == "layer3.1"  # the most accurate of the feasible explored
    html_path = write_report(ex, tmp_path / "explore.html")["html"]
    work = tmp_path / "work"
    work.mkdir()
    page = browse(chromium, html_path, work)
    assert page["console"] == [] and page["errors"] == []
    assert page["h1"] == ["NetCut exploration report"]
    assert page["h2"][:3] == ["Chosen network", "Exploration cost",
                              "Accuracy against predicted latency"]
    # the chosen network is what the page says first: network, cut, accuracies
    assert "resnet18, cut at layer3.1" in page["chosen"]
    assert "85.0%" in page["chosen"] and "83.0%" in page["chosen"]  # val, test
    # the three plots (cost, accuracy, depth) decode and are painted in the screenshot
    images = page["images"]
    assert [i["alt"] for i in images] == ["retraining time of the two searches",
                                          "accuracy against predicted latency",
                                          "accuracy against depth kept"]
    assert all(i["src"].startswith("data:image/png") and i["complete"]
               and min(i["natural"]) > 100 for i in images)
    assert page["stylesheets"] > 0 and page["tables"] >= 6
    shot = tmp_path / "shot.png"
    bottom = max(i["box"][1] + i["box"][3] for i in images)
    height = int(bottom) + 50  # every plot inside the shot
    crb.screenshot(chromium, html_path, shot, 1100, height, work)
    problems, stats = crb.check_png(shot, 1100, height, [i["box"] for i in images])
    assert problems == [] and stats["plots_checked"] == 3

    # the same checks catch a page that errs: a script error, a console message,
    # a plot that does not decode, a resource that does not load
    broken = tmp_path / "broken.html"
    junk = base64.b64encode(b"not a png" * 50).decode()
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64," + junk,
                  html_path.read_text(), count=1)
    broken.write_text(text.replace("</h1>", "</h1><script>console.warn('careful');"
                                   "noSuchFunction();</script><img src='gone.png'>", 1))
    page = browse(chromium, broken, work)
    assert any("careful" in ln for ln in page["console"])
    assert any("noSuchFunction is not defined" in ln for ln in page["console"])
    assert any("noSuchFunction is not defined" in e for e in page["errors"])
    assert any(e.startswith("failed to load <img> gone.png") for e in page["errors"])
    assert sum(not i["complete"] or min(i["natural"]) == 0 for i in page["images"]) == 2


# ----- the dynamic-network report (netcut dynamic report) ----------------------------------

def test_dynamic_report_renders_in_headless_chromium(chromium, cli, tmp_path):
    """A real dynamic network, built and reported by the CLI, read in Chromium: no
    console message or error, one table row per sub-net, the budget-trace plot decoded
    and painted."""
    import json

    folder, out = tmp_path / "dyn", tmp_path / "report"
    code, _, err = cli("dynamic", "build", "resnet18", "--input", "3x32x32", "--num-classes", "4",
                       "--exits", "layer2.1,layer4.1", "--widths", "1,0.5", "--hw", "epyc-milan-2c",
                       "--out", str(folder), "--json")
    assert code == 0, err
    code, _, err = cli("dynamic", "report", str(folder), "--frames", "8", "--out", str(out), "--json")
    assert code == 0, err
    names = [s["name"] for s in json.loads((out / "report.json").read_text())["subnets"]]
    work = tmp_path / "work"
    work.mkdir()
    page = browse(chromium, out / "report.html", work)
    assert page["console"] == [] and page["errors"] == []
    assert page["h2"] == ["Sub-nets", "Budget trace"]
    [image] = page["images"]
    assert image["alt"] == "budget trace" and image["complete"] and min(image["natural"]) > 100
    html_text = (out / "report.html").read_text()
    assert all(html_text.count(f"<td>{name}</td>") == 1 for name in names) and len(names) >= 2
    shot = tmp_path / "shot.png"
    height = int(image["box"][1] + image["box"][3]) + 50
    crb.screenshot(chromium, out / "report.html", shot, 1100, height, work)
    problems, stats = crb.check_png(shot, 1100, height, [image["box"]])
    assert problems == [] and stats["plots_checked"] == 1
