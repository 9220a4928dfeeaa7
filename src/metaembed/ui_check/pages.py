"""What one page must show, and checking it in the browser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from metaembed.tracking.redact import redact_credentials
from metaembed.ui_check.browser import Rendered, render


class Missing(RuntimeError):
    """The project's state lacks what a page would show (say which command makes it)."""


class PageFailed(AssertionError):
    """A page rendered without what the stores say it must show."""


@dataclass
class PageCheck:
    name: str  # the screenshot's file stem: says what the page is
    url: str
    shows: list[str] = field(default_factory=list)  # texts the page must show (whitespace-insensitive)
    markup: list[str] = field(default_factory=list)  # regexes the rendered DOM must match (plots: SVG layers)
    hides: list[str] = field(default_factory=list)  # texts it must not show (an error banner)
    height: int = 1000  # a taller window renders sections further down

    def run(self, chromium: str, out_dir: Path, text_dir: Path) -> Path:
        """Render the page, keep its screenshot, raise PageFailed naming everything it lacks (and keep
        the text it did show in `text_dir`)."""
        screenshot = out_dir / f"{self.name}.png"
        page = render(chromium, self.url, screenshot, height=self.height)
        problems = self.problems(page)
        if problems:
            text_dir.mkdir(parents=True, exist_ok=True)
            shown = text_dir / f"{self.name}.txt"
            shown.write_text(squash(page.text))
            raise PageFailed(f"{self.name} ({redact_credentials(self.url)}): " + "; ".join(problems)
                             + f" (screenshot: {screenshot}; its text: {shown})")
        return screenshot

    def problems(self, page: Rendered) -> list[str]:
        text = squash(page.text)
        found = [f"does not show {want!r}" for want in self.shows if squash(want) not in text]
        found += [f"has no element matching {pattern!r}" for pattern in self.markup if not re.search(pattern, page.dom)]
        found += [f"shows {unwanted!r}" for unwanted in self.hides if squash(unwanted) in text]
        if page.blank:
            found.append("rendered blank")
        return found


def squash(text: str) -> str:
    """Whitespace collapsed: tables and wrapped labels lay one value out over several lines."""
    return " ".join(text.split())
