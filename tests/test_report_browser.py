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
