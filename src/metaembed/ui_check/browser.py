"""Headless Chromium from the command line: one run per page gives its DOM after the scripts ran and a
screenshot (the project has no browser-driver dependency; the Debian package is enough)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
# MLflow's assistant panel takes ~500 px on the right; narrower, its run page stacks the run's details
# (child runs, tags) under the description instead of beside it.
WIDTH = 2000
# Virtual time lets the page's timers and requests finish without waiting that long on the clock.
VIRTUAL_TIME_MS = 30000
# Without it, charts drawn when they scroll into view (MLflow's metric cards) are missing from the DOM.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
         f"--virtual-time-budget={VIRTUAL_TIME_MS}")
INSTALL_HINT = "no headless Chromium found: `make browser` (root with apt) or apt-get install chromium"


@dataclass
class Rendered:
    dom: str
    text: str
    blank: bool


def find_chromium() -> str | None:
    explicit = os.environ.get("METAEMBED_CHROMIUM")
    return explicit or next((shutil.which(name) for name in NAMES if shutil.which(name)), None)


def render(chromium: str, url: str, screenshot: Path, height: int = 1000, timeout_s: float = 180) -> Rendered:
    """The page's DOM and visible text after its scripts ran, and its screenshot at WIDTH x height."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    command = [chromium, *FLAGS, f"--window-size={WIDTH},{height}", f"--screenshot={screenshot}", "--dump-dom", url]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"chromium did not finish rendering {url} in {timeout_s:.0f} s") from None
    if done.returncode != 0 or not screenshot.is_file():
        raise RuntimeError(f"chromium could not render {url} (exit {done.returncode}): {done.stderr[-1500:]}")
    return Rendered(done.stdout, visible_text(done.stdout), is_blank(screenshot))


def visible_text(dom: str) -> str:
    """Text of the DOM without tags, styles and scripts (their contents are no page text)."""
    body = re.sub(r"(?is)<(style|script|noscript)\b.*?</\1\s*>", " ", dom)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def is_blank(screenshot: Path) -> bool:
    """A page that failed to draw is a handful of flat colours; a real one has hundreds."""
    from PIL import Image

    with Image.open(screenshot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is not None and len(colours) <= 50
