"""The scene world: objects on a grid, their descriptions, and one-attribute twins.

A scene is data (no pixels): rendering lives in `render.py`. Keeping scenes as values lets the
generator check that a negative really fails a query (`Scene.contains`) instead of hoping so.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from metaembed.synth.params import SceneParams
from metaembed.synth.vocabulary import SIGN, SIZES, position_names

ATTRIBUTES = ("colour", "shape", "size", "position", "word")


@dataclass(frozen=True, order=True)
class Obj:
    cell: int
    shape: str
    colour: str
    size: str
    word: str = ""
    # Where the drawing sits inside its cell: visual variety, not part of what a query asks.
    offset: tuple[int, int] = field(default=(0, 0), compare=False)

    def label(self) -> str:
        if self.shape == SIGN:
            return f"{self.size} {self.colour} sign reading {self.word}"
        return f"{self.size} {self.colour} {self.shape}"

    def key(self) -> tuple[str, str, str, str]:
        """What a grounding label names: everything but the position."""
        return (self.shape, self.colour, self.size, self.word)


@dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    background: int

    def at(self, cell: int) -> Obj | None:
        return next((obj for obj in self.objects if obj.cell == cell), None)

    def contains(self, obj: Obj) -> bool:
        return any(other == obj for other in self.objects)

    def swap(self, old: Obj, new: Obj) -> Scene:
        objects = tuple(sorted(new if obj.cell == old.cell else obj for obj in self.objects))
        return Scene(objects=objects, background=self.background)


class World:
    """Samples objects and scenes of one split and derives twins; all randomness comes from `rng`."""

    def __init__(self, params: SceneParams, heldout: frozenset[tuple[str, str]], split: str) -> None:
        if split not in ("train", "ood"):
            raise ValueError(f"split must be 'train' or 'ood', got {split!r}")
        self.params = params
        self.heldout = heldout
        self.split = split
        self.positions = position_names(params.grid)
        self.cells = params.grid**2

    # descriptions -----------------------------------------------------------------------------
    def describe(self, obj: Obj) -> str:
        return f"{obj.label()} at the {self.positions[obj.cell]}"

    def mention(self, obj: Obj) -> str:
        """How a text-to-image query names `obj`: with its position unless scenes.query_positions is off."""
        return self.describe(obj) if self.params.query_positions else obj.label()

    def matches(self, scene: Scene, obj: Obj) -> bool:
        """Whether `scene` shows what `mention(obj)` asks for."""
        if self.params.query_positions:
            return scene.contains(obj)
        return any(other.key() == obj.key() for other in scene.objects)

    def query_twins(self, rng: np.random.Generator, scene: Scene, obj: Obj, limit: int) -> list[tuple[str, Obj]]:
        """Twins that fail `mention(obj)`: a moved object fails it only when the query names positions."""
        skip = () if self.params.query_positions else ("position",)
        return self.twins(rng, scene, obj, limit, skip)

    def caption(self, scene: Scene) -> str:
        return ", ".join(self.describe(obj) for obj in scene.objects)

    # sampling ---------------------------------------------------------------------------------
    def allowed(self, colour: str, shape: str) -> bool:
        return self.split == "ood" or (colour, shape) not in self.heldout

    def sample_object(self, rng: np.random.Generator, cell: int) -> Obj:
        params = self.params
        size = SIZES[int(rng.integers(len(SIZES)))]
        if params.sign_words and rng.random() < params.sign_prob:
            word = params.sign_words[int(rng.integers(len(params.sign_words)))]
            colour = params.colours[int(rng.integers(len(params.colours)))]
            return Obj(cell, SIGN, colour, size, word, self._offset(rng))
        combos = [(c, s) for c in params.colours for s in params.shapes if self.allowed(c, s)]
        colour, shape = combos[int(rng.integers(len(combos)))]
        return Obj(cell, shape, colour, size, "", self._offset(rng))

    def _offset(self, rng: np.random.Generator) -> tuple[int, int]:
        jitter = max(1, self.params.image_size // self.params.grid // 12)
        return (int(rng.integers(-jitter, jitter + 1)), int(rng.integers(-jitter, jitter + 1)))

    def sample_scene(self, rng: np.random.Generator, n_objects: int, must_have: Obj | None = None) -> Scene:
        """A scene of `n_objects` with distinct labels (so a grounding label names one object)."""
        cells = [int(c) for c in rng.permutation(self.cells)[:n_objects]]
        objects: list[Obj] = [] if must_have is None else [must_have]
        cells = [c for c in cells if must_have is None or c != must_have.cell][: n_objects - len(objects)]
        for cell in cells:
            for _ in range(50):
                candidate = self.sample_object(rng, cell)
                if all(candidate.key() != other.key() for other in objects):
                    objects.append(candidate)
                    break
        background = int(rng.integers(4))
        return Scene(objects=tuple(sorted(objects)), background=background)

    def sample_n_objects(self, rng: np.random.Generator, low: int | None, high: int | None) -> int:
        low = self.params.min_objects if low is None else low
        high = self.params.max_objects if high is None else high
        return int(rng.integers(min(low, self.cells), min(high, self.cells) + 1))

    # twins ------------------------------------------------------------------------------------
    def alternatives(self, scene: Scene, obj: Obj, attribute: str) -> list[Obj]:
        """Every object that differs from `obj` in exactly `attribute` and fits the scene."""
        params = self.params
        if attribute == "colour":
            return [replace(obj, colour=c) for c in params.colours
                    if c != obj.colour and (obj.shape == SIGN or self.allowed(c, obj.shape))]
        if attribute == "shape" and obj.shape != SIGN:
            return [replace(obj, shape=s) for s in params.shapes if s != obj.shape and self.allowed(obj.colour, s)]
        if attribute == "size":
            return [replace(obj, size=s) for s in SIZES if s != obj.size]
        if attribute == "position":
            return [replace(obj, cell=c) for c in range(self.cells) if scene.at(c) is None]
        if attribute == "word" and obj.shape == SIGN:
            return [replace(obj, word=w) for w in params.sign_words if w != obj.word]
        return []

    def twins(self, rng: np.random.Generator, scene: Scene, obj: Obj, limit: int,
              skip: tuple[str, ...] = ()) -> list[tuple[str, Obj]]:
        """Up to `limit` one-attribute changes of `obj`, spread over the attributes (but `skip`) in turn."""
        pools = {a: self.alternatives(scene, obj, a) for a in ATTRIBUTES if a not in skip}
        pools = {a: [pool[i] for i in rng.permutation(len(pool))] for a, pool in pools.items() if pool}
        chosen: list[tuple[str, Obj]] = []
        for attribute in itertools.cycle(list(pools)):
            if len(chosen) >= limit or not any(pools.values()):
                break
            if pools[attribute]:
                chosen.append((attribute, pools[attribute].pop()))
        return chosen


def pick_heldout(params: SceneParams, seed: int) -> frozenset[tuple[str, str]]:
    """The colour-shape pairs kept out of training: a pure function of the seed."""
    rng = np.random.default_rng([seed, 7919])
    combos = [(c, s) for c in params.colours for s in params.shapes]
    picked = rng.permutation(len(combos))[: params.heldout_combos]
    return frozenset(combos[int(i)] for i in picked)
