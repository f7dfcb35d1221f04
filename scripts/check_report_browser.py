#!/usr/bin/env python3
"""Check that netcut's HTML deadline-feasibility report renders in a real browser.

Steps:
  1. find headless Chromium, or fetch it from Debian's packages without installing
     anything system-wide (``apt-get download`` + ``dpkg -x`` into a cache folder);
  2. write a small real report with netcut's own planner;
  3. let Chromium lay the page out (``--dump-dom`` on a copy with a probe script that
     records every <img>'s decoded size and position) and take a screenshot;
  4. check the screenshot: a PNG of the requested size, not blank, and every plot
     inside it painted (coloured pixels where the DOM says the image is).

Exit codes: 0 and a last line ``OK: ...`` when it renders; 1 and ``FAIL: ...`` when it
does not; 0 and ``SKIPPED: <why>`` when Chromium cannot be had here (no apt, no
network...), or 1 with ``--require``.

Where Chromium comes from, first match wins:
  * ``$NETCUT_CHROMIUM``: a Chromium/Chrome binary;
  * ``chromium`` (or chromium-browser, google-chrome) on PATH;
  * the cache ``$NETCUT_CHROMIUM_DIR``, else ``$XDG_CACHE_HOME/netcut/chromium``, else
    ``~/.cache/netcut/chromium``, filled on first use: apt's package lists are
    refreshed into that folder (no root needed), ``apt-get download`` fetches chromium,
    chromium-common and the shared libraries this system lacks, and ``dpkg -x``
    unpacks them under ``<cache>/root``; the .debs are deleted afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_OUT = Path("reports/browser-check.png")
NETWORKS = ["resnet18", "mobilenet_v3_small"]
DEVICES = ["jetson-orin-nano", "raspberry-pi-4"]
DEADLINE_MS = 20.0
PROBE_ID = "netcut-browser-probe"
STAMP = ".netcut-complete"


class ChromiumUnavailable(RuntimeError):
    """Chromium cannot be found or fetched here: the check is skipped, not failed."""


class CheckFailed(RuntimeError):
    """The report did not render as it should."""


def log(msg: str) -> None:
    print(f"[browser-check] {msg}", flush=True)


# ----- running commands ------------------------------------------------------------------

def _run(cmd: list[str], timeout: float, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; on timeout end that group (only ours)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, out, err) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _last_error(text: str) -> str:
    """The most telling line of a tool's output (apt's E: lines first)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "Err:", "W: Failed", "error", "Error"))]
    return (errors or lines or ["(no output)"])[-1][:300]


# ----- finding or fetching Chromium ------------------------------------------------------

@dataclass
class Chromium:
    binary: Path
    version: str
    how: str  # where it came from, in words
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.extra_env.items():
            env[key] = value + (os.pathsep + env[key] if env.get(key) else "")
        return env


def cache_dir() -> Path:
    given = os.environ.get("NETCUT_CHROMIUM_DIR")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "netcut" / "chromium"


def _library_dirs(root: Path) -> list[str]:
    """Folders under an unpacked prefix that hold shared libraries (for LD_LIBRARY_PATH)."""
    dirs = set()
    for top in (root / "usr" / "lib", root / "lib"):
        if top.is_dir():
            for lib in top.rglob("lib*.so*"):
                if lib.is_file() and "chromium" not in lib.parent.relative_to(root).parts:
                    dirs.add(str(lib.parent))
    return sorted(dirs)


def _version(binary: Path, extra_env: dict[str, str]) -> str | None:
    probe = Chromium(binary, "", "", extra_env)
    try:
        res = _run([str(binary), "--version"], timeout=60, env=probe.env())
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = res.stdout.strip()
    return text if res.returncode == 0 and re.match(r"(Chromium|Google Chrome)\b", text) else None


def _missing_libraries(binary: Path, extra_env: dict[str, str]) -> list[str]:
    if not shutil.which("ldd"):
        return []
    try:
        res = _run(["ldd", str(binary)], timeout=60,
                   env=Chromium(binary, "", "", extra_env).env())
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [ln.split("=>")[0].strip() for ln in res.stdout.splitlines() if "not found" in ln]


def _cached(root: Path) -> Chromium | None:
    binary = root / "usr" / "lib" / "chromium" / "chromium"
    if not (root / STAMP).is_file() or not binary.is_file():
        return None
    extra = {"LD_LIBRARY_PATH": os.pathsep.join(_library_dirs(root))}
    version = _version(binary, extra)
    return Chromium(binary, version, f"cached under {root}", extra) if version else None


def _apt(opts: list[str], *args: str, timeout: float = 600, cwd: Path | None = None):
    return _run(["apt-get", *opts, *args], timeout=timeout, cwd=cwd)


def _candidate(opts: list[str]) -> str | None:
    try:
        res = _run(["apt-cache", *opts, "policy", "chromium"], timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"Candidate:\s*(\S+)", res.stdout)
    return m.group(1) if m and m.group(1) != "(none)" else None


def install_chromium(folder: Path) -> Chromium:
    """Fetch Debian's chromium and the libraries this system lacks, unpack them, no root."""
    missing_tools = [t for t in ("apt-get", "apt-cache", "dpkg") if not shutil.which(t)]
    if missing_tools:
        raise ChromiumUnavailable(f"no {', '.join(missing_tools)} here (not a Debian-like "
                                  "system), and no chromium on PATH")
    folder.mkdir(parents=True, exist_ok=True)
    root, partial, debs = folder / "root", folder / "root.partial", folder / "debs"
    lists, apt_cache = folder / "apt" / "lists", folder / "apt" / "cache"
    for d in (lists / "partial", apt_cache / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    common = ["-q", "-o", "Acquire::Retries=1", "-o", "Acquire::http::Timeout=30",
              "-o", "Acquire::https::Timeout=30"]
    if os.geteuid() == 0:  # apt would try to drop to _apt, who cannot write our folders
        common += ["-o", "APT::Sandbox::User=root"]
    private = common + ["-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={apt_cache}",
                        "-o", "Debug::NoLocking=1"]

    # 1. package lists: a private, fresh copy (the system's may be absent or stale)
    t0 = time.monotonic()
    try:
        res = _apt(private, "update", timeout=300)
        text = res.stdout + res.stderr
        failed = res.returncode != 0 or re.search(r"^(Err:|W: Failed|E:)", text, re.M)
        why_not = _last_error(text) if failed else None
    except subprocess.TimeoutExpired:
        why_not = "apt-get update timed out after 300 s"
    opts = private if _candidate(private) else common
    log(f"apt-get update into {lists}: "
        + (f"done in {time.monotonic() - t0:.1f} s" if why_not is None else f"failed ({why_not})")
        + ("" if opts is private else "; using the system's package lists"))
    version = _candidate(opts)
    if not version:
        raise ChromiumUnavailable("apt knows no 'chromium' package here"
                                  + (f" (apt-get update: {why_not})" if why_not else ""))

    # 2. what apt would install: chromium, chromium-common and the libraries we lack
    sim = _apt(opts, "-s", "install", "--no-install-recommends", "chromium", timeout=300)
    pkgs = [ln.split()[1] for ln in sim.stdout.splitlines() if ln.startswith("Inst ")]
    if sim.returncode != 0 or "chromium" not in pkgs:
        pkgs = ["chromium", "chromium-common"]
    pkgs = [p for p in pkgs if p not in ("xdg-utils", "chromium-sandbox")]

    # 3. download
    shutil.rmtree(debs, ignore_errors=True)
    debs.mkdir()
    t0 = time.monotonic()
    try:
        res = _apt(opts, "download", *pkgs, timeout=900, cwd=debs)
    except subprocess.TimeoutExpired:
        raise ChromiumUnavailable("apt-get download timed out after 900 s") from None
    if res.returncode != 0:
        raise ChromiumUnavailable(f"apt-get download failed: {_last_error(res.stdout + res.stderr)}")
    files = sorted(debs.glob("*.deb"))
    size = sum(f.stat().st_size for f in files)
    log(f"downloaded chromium {version} and {len(files) - 1} other packages "
        f"({size / 2**20:.0f} MiB) in {time.monotonic() - t0:.1f} s")

    # 4. unpack into root.partial, then move it into place
    t0 = time.monotonic()
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for deb in files:
        res = _run(["dpkg", "-x", str(deb), str(partial)], timeout=600)
        if res.returncode != 0:
            raise ChromiumUnavailable(f"dpkg -x {deb.name} failed: {_last_error(res.stderr)}")
    (partial / STAMP).write_text(json.dumps({"version": version, "packages": pkgs}) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    shutil.rmtree(debs, ignore_errors=True)
    unpacked = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and not f.is_symlink())
    log(f"unpacked {len(files)} packages into {root} ({unpacked / 2**20:.0f} MiB) "
        f"in {time.monotonic() - t0:.1f} s")

    found = _cached(root)
    if found is None:
        binary = root / "usr" / "lib" / "chromium" / "chromium"
        lacking = _missing_libraries(binary, {"LD_LIBRARY_PATH": os.pathsep.join(_library_dirs(root))})
        raise ChromiumUnavailable(
            f"unpacked Chromium does not start ({binary})"
            + (f": missing libraries {', '.join(lacking)}" if lacking else ""))
    found.how = f"installed just now under {root}"
    return found


@contextlib.contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock
            pass
        yield


def find_chromium(install: bool = True) -> Chromium:
    """Chromium to use, fetching it into the cache when allowed; ChromiumUnavailable if none."""
    given = os.environ.get("NETCUT_CHROMIUM")
    if given:
        version = _version(Path(given), {})
        if not version:
            raise ChromiumUnavailable(f"$NETCUT_CHROMIUM={given} does not run as Chromium")
        return Chromium(Path(given), version, "from $NETCUT_CHROMIUM")
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path and (version := _version(Path(path), {})):
            return Chromium(Path(path), version, "on PATH")
    folder = cache_dir()
    if (found := _cached(folder / "root")) is not None:
        return found
    if not install:
        raise ChromiumUnavailable(f"no chromium on PATH nor in {folder} (fetching disabled)")
    try:
        with _locked(folder):
            # another process may have filled the cache while we waited for the lock
            if (found := _cached(folder / "root")) is not None:
                return found
            return install_chromium(folder)
    except OSError as exc:
        raise ChromiumUnavailable(f"cannot use {folder}: {exc}") from None


# ----- the report ------------------------------------------------------------------------

def make_report(folder: Path) -> Path:
    """A small real report written by netcut's own planner; returns the HTML's path."""
    from netcut.planner.plan import plan
    from netcut.planner.report import write_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not calibrated, so no prediction interval"
        p = plan(NETWORKS, DEVICES, DEADLINE_MS)
    return Path(write_report(p, folder / "plan.html")["html"])


_PROBE = """<script>addEventListener('load', () => {
  const doc = document.documentElement;
  const probe = {
    images: [...document.images].map(i => { const r = i.getBoundingClientRect();
      return {src: i.getAttribute('src').slice(0, 22), complete: i.complete,
              natural: [i.naturalWidth, i.naturalHeight],
              box: [r.left + scrollX, r.top + scrollY, r.width, r.height]}; }),
    width: doc.scrollWidth, height: doc.scrollHeight, viewport: innerWidth,
    stylesheets: [...document.styleSheets].reduce((n, s) => n + s.cssRules.length, 0),
    h1: [...document.querySelectorAll('h1')].map(h => h.textContent),
    h2: [...document.querySelectorAll('h2')].map(h => h.textContent),
    tables: document.querySelectorAll('table').length};
  // then unfold every <details> (after the boxes above, which the screenshot shares)
  // and list what sticks out past the window's right edge
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const edge = document.body.getBoundingClientRect().right, wide = [];
  document.querySelectorAll('table, img, pre, p').forEach(el => {
    const r = el.getBoundingClientRect();
    if (r.right > Math.min(innerWidth, edge) + 1)
      wide.push(el.tagName.toLowerCase() + (el.closest('details') ? ' (in <details>)' : '')
                + ' to ' + Math.round(r.right) + 'px');
  });
  probe.too_wide = wide; probe.body_right = Math.round(edge);
  probe.width_unfolded = doc.scrollWidth;
  const pre = document.createElement('pre');
  pre.id = '%s'; pre.textContent = JSON.stringify(probe); document.body.appendChild(pre);
});</script>""" % PROBE_ID


def _chromium_cmd(chromium: Chromium, profile: Path, width: int, height: int) -> list[str]:
    return [str(chromium.binary), "--headless", "--no-sandbox", "--disable-gpu",
            "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage",
            "--mute-audio", f"--user-data-dir={profile}", f"--window-size={width},{height}"]


def probe_layout(chromium: Chromium, html_path: Path, width: int, height: int,
                 work: Path) -> dict:
    """Lay the page out in Chromium; what the probe script saw after the load event."""
    text = html_path.read_text(encoding="utf-8")
    if "</body>" not in text:
        raise CheckFailed(f"{html_path} has no </body>: not a complete HTML page")
    probed = text.replace("</body>", _PROBE + "</body>", 1)
    probe_html = html_path.with_name(html_path.stem + ".probe.html")  # beside it: same relative links
    try:
        probe_html.write_text(probed, encoding="utf-8")
    except OSError:  # a read-only folder: the report's images are embedded anyway
        probe_html = work / (html_path.stem + ".probe.html")
        probe_html.write_text(probed, encoding="utf-8")
    cmd = _chromium_cmd(chromium, work / "profile-dom", width, height) + [
        "--dump-dom", probe_html.resolve().as_uri()]
    try:
        res = _run(cmd, timeout=120, env=chromium.env())
    finally:
        probe_html.unlink(missing_ok=True)
    m = re.search(rf'<pre id="{PROBE_ID}">(.*?)</pre>', res.stdout, re.S)
    if res.returncode != 0 or not m:
        raise CheckFailed(f"chromium --dump-dom gave no layout (exit {res.returncode}): "
                          f"{_last_error(res.stderr)}")
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


def screenshot(chromium: Chromium, html_path: Path, out: Path, width: int, height: int,
               work: Path) -> float:
    """Screenshot the page into ``out``; returns the seconds it took."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial.png")
    tmp.unlink(missing_ok=True)
    cmd = _chromium_cmd(chromium, work / "profile-shot", width, height) + [
        f"--screenshot={tmp}", html_path.resolve().as_uri()]
    t0 = time.monotonic()
    res = _run(cmd, timeout=120, env=chromium.env())
    took = time.monotonic() - t0
    if res.returncode != 0 or not tmp.is_file():
        raise CheckFailed(f"chromium --screenshot wrote nothing (exit {res.returncode}): "
                          f"{_last_error(res.stderr)}")
    os.replace(tmp, out)
    return took


def _s(items: list) -> str:
    return "s" if len(items) > 1 else ""


def _nums(items: list[int]) -> str:
    return ", ".join(map(str, items))


def check_layout(layout: dict, devices: list[str]) -> list[str]:
    """Problems with the page as laid out (empty list when fine)."""
    problems = []
    images = layout.get("images", [])
    if len(images) != 2 * len(devices):
        problems.append(f"{len(images)} <img> elements, expected {2 * len(devices)} "
                        f"(two plots per device)")
    not_png = [n for n, i in enumerate(images, 1) if not i["src"].startswith("data:image/png")]
    broken = [n for n, i in enumerate(images, 1) if not i["complete"] or min(i["natural"]) <= 0]
    tiny = [n for n, i in enumerate(images, 1) if n not in broken and min(i["box"][2:]) < 50]
    if not_png:
        problems.append(f"image{_s(not_png)} {_nums(not_png)} not embedded PNG data: URIs")
    if broken:
        problems.append(f"image{_s(broken)} {_nums(broken)} of {len(images)} did not decode "
                        "in the browser")
    if tiny:
        problems.append(f"image{_s(tiny)} {_nums(tiny)} shown smaller than 50 px")
    if layout.get("stylesheets", 0) < 1:
        problems.append("no CSS rules applied (unstyled page)")
    if not layout.get("h1"):
        problems.append("no <h1> heading")
    for hw in devices:
        if hw not in layout.get("h2", []):
            problems.append(f"no <h2> section for {hw}")
    if layout.get("tables", 0) < 3 * len(devices):
        problems.append(f"only {layout.get('tables', 0)} tables")
    return problems


def check_png(path: Path, width: int, height: int, boxes: list[list[float]] | None = None,
              min_ink: float = 0.02) -> tuple[list[str], dict]:
    """Problems with the screenshot, and what was measured.

    ``boxes`` (x, y, w, h in page pixels) are the plots: each one inside the shot must
    hold coloured pixels (the curves and markers), not just a white or grey box.
    """
    import numpy as np
    from PIL import Image

    problems: list[str] = []
    try:
        with Image.open(path) as im:
            fmt, size = im.format, im.size
            rgb = np.asarray(im.convert("RGB")).astype(np.int16)
    except Exception as exc:
        return [f"{path} is not a readable image ({exc})"], {}
    if fmt != "PNG":
        problems.append(f"{path} is {fmt}, not PNG")
    if size != (width, height):
        problems.append(f"screenshot is {size[0]}x{size[1]}, expected {width}x{height}")
    ink = float((rgb.min(axis=2) < 245).mean())  # anything not (near) white
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 80  # saturated: plot lines, markers
    stats = {"size": size, "ink": ink, "coloured_px": int(coloured.sum()), "plots_checked": 0}
    if ink < min_ink:
        problems.append(f"screenshot is nearly blank ({ink:.1%} non-white pixels)")
    empty = []
    for n, (x, y, w, h) in enumerate(boxes or [], 1):
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        if y1 > size[1] or x1 > size[0] or w < 1 or h < 1:
            continue  # below the fold of this screenshot
        stats["plots_checked"] += 1
        region_ink = float((rgb[y0:y1, x0:x1].min(axis=2) < 245).mean())
        region_col = int(coloured[y0:y1, x0:x1].sum())
        if region_col < 200 or region_ink < 0.03:
            empty.append(n)
    if empty:
        problems.append(f"plot{_s(empty)} {_nums(empty)} look{'' if empty[1:] else 's'} empty "
                        "in the screenshot (no coloured curves where the image is)")
    return problems, stats


@dataclass
class Result:
    out: Path
    chromium: Chromium
    layout: dict
    stats: dict
    notes: list[str]
    seconds: dict


def run_check(out: Path = DEFAULT_OUT, width: int = 1200, height: int = 2400,
              full_page: bool = False, html: Path | None = None, install: bool = True,
              work: Path | None = None) -> Result:
    """The whole check. Raises ChromiumUnavailable (skip) or CheckFailed (fail)."""
    seconds: dict[str, float] = {}
    t0 = time.monotonic()
    chromium = find_chromium(install=install)
    seconds["chromium"] = time.monotonic() - t0
    log(f"{chromium.version} {chromium.how}: {chromium.binary}")
    with contextlib.ExitStack() as stack:
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="netcut-browser-")))
        if html is None:
            t0 = time.monotonic()
            html = make_report(work)
            seconds["report"] = time.monotonic() - t0
            log(f"wrote a report for {', '.join(NETWORKS)} on {', '.join(DEVICES)}, deadline "
                f"{DEADLINE_MS:g} ms ({html.stat().st_size / 1024:.0f} KiB) in {seconds['report']:.1f} s")
            devices = DEVICES
        else:
            devices = None
        t0 = time.monotonic()
        layout = probe_layout(chromium, html, width, height, work)
        seconds["layout"] = time.monotonic() - t0
        if devices is None:  # a report given by the caller: whatever sections it has
            devices = [h for h in layout.get("h2", []) if not h.startswith((
                "Feasibility matrix", "Networks skipped", "Unsupported ops"))]
        problems = check_layout(layout, devices)
        if full_page:
            height = max(1, min(int(layout.get("height", height)), 16384))
        seconds["screenshot"] = screenshot(chromium, html, out, width, height, work)
        png_problems, stats = check_png(out, width, height, [i["box"] for i in layout["images"]])
        problems += png_problems
    if problems:
        raise CheckFailed("; ".join(problems))
    notes = []
    if layout.get("width", 0) > layout.get("viewport", width):
        notes.append(f"page is {layout['width']} px wide in a {layout['viewport']} px window "
                     "(horizontal scrolling)")
    if layout.get("width_unfolded", 0) > layout.get("width", 0):
        notes.append(f"with every <details> open the page is {layout['width_unfolded']} px wide")
    if layout.get("too_wide"):
        notes.append(f"{len(layout['too_wide'])} elements stick out past the text column "
                     f"(right edge {layout.get('body_right')} px): " + ", ".join(layout["too_wide"][:5]))
    if stats["plots_checked"] < len(layout["images"]):
        notes.append(f"{stats['plots_checked']} of {len(layout['images'])} plots are inside the "
                     f"{width}x{height} screenshot (page is {layout.get('height')} px tall; "
                     "--full-page shows all); all decoded in the DOM")
    return Result(out, chromium, layout, stats, notes, seconds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"where the screenshot goes (default {DEFAULT_OUT})")
    ap.add_argument("--size", default="1200x2400", help="window WIDTHxHEIGHT (default 1200x2400)")
    ap.add_argument("--full-page", action="store_true",
                    help="make the window as tall as the page, so the shot shows all of it")
    ap.add_argument("--html", type=Path, help="check this report instead of writing a new one")
    ap.add_argument("--no-install", action="store_true",
                    help="use only a Chromium already on PATH or in the cache")
    ap.add_argument("--require", action="store_true",
                    help="fail (exit 1) instead of skipping when Chromium cannot be had")
    args = ap.parse_args(argv)
    m = re.fullmatch(r"(\d+)x(\d+)", args.size)
    if not m:
        ap.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    width, height = int(m.group(1)), int(m.group(2))
    if args.html is not None and not args.html.is_file():
        print(f"FAIL: no such report {args.html}")
        return 1
    try:
        res = run_check(args.out, width, height, args.full_page, args.html,
                        install=not args.no_install)
    except ChromiumUnavailable as exc:
        print(f"{'FAIL' if args.require else 'SKIPPED'}: no headless Chromium: {exc}")
        return 1 if args.require else 0
    except CheckFailed as exc:
        print(f"FAIL: the report does not render in headless Chromium: {exc}")
        return 1
    for note in res.notes:
        log(f"note: {note}")
    s = res.stats
    print(f"OK: report rendered in {res.chromium.version}: {s['size'][0]}x{s['size'][1]} PNG at "
          f"{res.out}, {s['ink']:.1%} ink, {len(res.layout['images'])} plots decoded "
          f"({s['plots_checked']} checked in the shot), screenshot in "
          f"{res.seconds['screenshot']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
