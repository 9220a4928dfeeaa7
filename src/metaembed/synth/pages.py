"""Document pages for the ViDoRe-style sets: reports with a title and four captioned figures.

Every region is drawn big enough to read at 16x16 pixels per visual token: the title at twice the
font size, each figure an icon of one colour and shape with a one-word caption. Queries name a
report and a figure or a caption word, so that finding a page needs detail, not layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metaembed.synth.params import PageParams, SceneParams
from metaembed.synth.render import (
    COLOUR_INDEX,
    INK_INDEX,
    PAPER_INDEX,
    draw_text,
    paste,
    shape_mask,
)
from metaembed.synth.vocabulary import PAGE_WORDS, TOPICS

REGIONS_PER_PAGE = 4


@dataclass(frozen=True)
class Region:
    shape: str
    colour: str
    word: str


@dataclass(frozen=True)
class Page:
    doc: str  # e.g. "solar 3": what the title shows and queries name
    number: int  # 1-based page number inside the document
    regions: tuple[Region, ...]

    @property
    def filename(self) -> str:
        return f"{self.doc.replace(' ', '_')}_p{self.number}.png"


def sample_documents(rng: np.random.Generator, count: int, pages: PageParams, scenes: SceneParams,
                     taken: set[str] | None = None) -> list[list[Page]]:
    """`count` documents of distinct titles (none in `taken`); within a document every figure
    (colour, shape) and every caption word appears once, so a specific query has one answer."""
    taken = set() if taken is None else taken
    titles = [f"{topic} {n}" for topic in TOPICS for n in range(1, 100)]
    free = [title for title in titles if title not in taken]
    if count > len(free):
        raise ValueError(f"only {len(free)} distinct document titles are left, {count} documents asked")
    documents = []
    for index in rng.permutation(len(free))[:count]:
        title = free[int(index)]
        taken.add(title)
        documents.append(_sample_document(rng, title, pages, scenes))
    return documents


def _sample_document(rng: np.random.Generator, title: str, pages: PageParams, scenes: SceneParams) -> list[Page]:
    n_pages = int(rng.integers(pages.min_pages_per_doc, pages.max_pages_per_doc + 1))
    need = n_pages * REGIONS_PER_PAGE
    # White would vanish on the paper.
    figures = [(c, s) for c in scenes.colours if c != "white" for s in scenes.shapes]
    if need > min(len(figures), len(PAGE_WORDS)):
        raise ValueError(f"a document of {n_pages} pages needs {need} distinct figures and caption words; "
                         f"lower pages.max_pages_per_doc")
    figure_order = rng.permutation(len(figures))[:need]
    word_order = rng.permutation(len(PAGE_WORDS))[:need]
    regions = [Region(figures[int(f)][1], figures[int(f)][0], PAGE_WORDS[int(w)])
               for f, w in zip(figure_order, word_order)]
    return [Page(title, p + 1, tuple(regions[p * REGIONS_PER_PAGE : (p + 1) * REGIONS_PER_PAGE]))
            for p in range(n_pages)]


def render_page(page: Page, width: int, height: int) -> np.ndarray:
    canvas = np.full((height, width), PAPER_INDEX, dtype=np.uint8)
    draw_text(canvas, page.doc, top=4, left=4, scale=2)
    canvas[21, 4 : width - 4] = INK_INDEX  # a rule under the title
    body_top, body_bottom = 26, height - 12
    region_h, region_w = (body_bottom - body_top) // 2, (width - 8) // 2
    for index, region in enumerate(page.regions):
        row, col = divmod(index, 2)
        top, left = body_top + row * region_h, 4 + col * region_w
        icon = min(region_h - 10, region_w // 2 - 2)
        paste(canvas, shape_mask(region.shape, icon * 0.45, icon), COLOUR_INDEX[region.colour], top + 1, left + 1)
        draw_text(canvas, region.word, top=top + icon + 2, left=left + 1, scale=1)
    draw_text(canvas, str(page.number), top=height - 10, left=width - 10, scale=1)
    return canvas
