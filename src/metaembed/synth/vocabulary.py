"""The words and colours of the synthetic world.

Colours are far apart in RGB so that one visual token tells them apart; every word here is a
plain English word so that a small BPE tokenizer can hold it as one token (`words()` lists them
for whoever trains one).
"""

from __future__ import annotations

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 20),
    "purple": (150, 60, 200),
    "cyan": (40, 210, 220),
    "white": (245, 245, 245),
    "pink": (250, 150, 190),
    "brown": (140, 90, 40),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "bar")
SIGN = "sign"
DEFAULT_SIGN_WORDS = ("sun", "cat", "dog", "box", "cup", "key", "map", "hat")
SIZES = ("small", "large")
# Dark backgrounds: every object colour stands out against each of them.
SCENE_BACKGROUNDS: tuple[tuple[int, int, int], ...] = ((24, 24, 28), (48, 44, 40), (30, 40, 56), (56, 56, 56))
INK = (20, 20, 20)
PAPER = (250, 248, 240)

# At most five letters: "water 37" must fit the title line of a 112-pixel page at double size.
TOPICS = ("solar", "water", "trade", "music", "space", "roads", "farms", "coal", "birds", "food", "sport",
          "money", "games", "books", "wind", "rain", "stone", "glass", "steel", "paper", "milk", "salt", "gold",
          "fish", "trees", "fruit", "wine", "ships", "cars", "oil")
PAGE_WORDS = ("cost", "plan", "data", "sales", "risk", "goal", "team", "time", "rate", "list", "map", "note",
              "test", "unit", "zone", "step", "view", "area", "load", "size", "tax", "fee", "job", "use")


def position_names(grid: int) -> list[str]:
    """Names of the grid cells in reading order ("top left", ..., "bottom right")."""
    rows = {2: ["top", "bottom"], 3: ["top", "", "bottom"], 4: ["top", "upper", "lower", "bottom"]}[grid]
    cols = {2: ["left", "right"], 3: ["left", "", "right"], 4: ["far left", "left", "right", "far right"]}[grid]
    names = []
    for row in rows:
        for col in cols:
            names.append(" ".join(part for part in (row, col) if part) or "center")
    return names


def words(sign_words: tuple[str, ...] = DEFAULT_SIGN_WORDS) -> list[str]:
    """Every word the generator may write into an English query, caption or page, once each."""
    from metaembed.data import templates

    found = set(COLOURS) | set(SHAPES) | set(SIZES) | {SIGN, "reading"} | set(TOPICS) | set(PAGE_WORDS)
    found |= set(sign_words)
    for grid in (2, 3, 4):
        found.update(" ".join(position_names(grid)).split())
    found.update(templates.template_words())
    return sorted(found)
