"""The MMEB-style tasks over scenes: what a query asks, its positive, and its one-attribute twins.

Every candidate carries a `key` (what it shows, as data) and every query an `accepts(key)` test,
so the generator can prove that each negative fails its query instead of assuming it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace

import numpy as np

from metaembed.data import templates as t
from metaembed.synth.render import render_crop, render_scene
from metaembed.synth.scenes import Obj, Scene, World

# MMEB's four meta-tasks, for the dataset card and the manifests.
META_TASKS = {
    "ObjectClass": "classification", "NovelComboClass": "classification",
    "SceneVQA": "vqa",
    "SceneT2I": "retrieval", "SceneI2T": "retrieval", "SceneIT2I": "retrieval",
    "NovelComboT2I": "retrieval", "TwoObjectT2I": "retrieval",
    "SceneGrounding": "visual_grounding",
}


@dataclass
class Item:
    """One side of a pair: text, optional pixels, and what it shows."""

    text: str
    draw: Callable[[], np.ndarray] | None = None  # rendered only if the item is written
    key: Hashable = None
    path: str = ""  # filled in when the image is written


@dataclass
class Case:
    query: Item
    positive: Item
    twins: list[Item]
    accepts: Callable[[Hashable], bool]
    extras: list[Item] = field(default_factory=list)  # other plausible negatives (scene-mates)


@dataclass(frozen=True)
class Level:
    min_objects: int | None
    max_objects: int | None
    hard_negatives: bool


class SceneTask(ABC):
    """Base: a task draws a case from a world; subclasses say what the query asks."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.size = world.params.image_size
        self.grid = world.params.grid

    def scene_item(self, scene: Scene, text: str = t.IMAGE_CANDIDATE) -> Item:
        return Item(text, lambda: render_scene(scene, self.size, self.grid), key=scene)

    def scene(self, rng: np.random.Generator, level: Level) -> Scene:
        return self.world.sample_scene(rng, self.world.sample_n_objects(rng, level.min_objects, level.max_objects))

    @abstractmethod
    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        """One query with its positive and `twins` one-attribute negatives."""

    @abstractmethod
    def random_item(self, rng: np.random.Generator) -> Item:
        """A candidate of this task's kind, for the random part of an eval list."""

    def negative(self, rng: np.random.Generator, case: Case, hard: bool) -> Item:
        """The training hard negative: a twin, or (easy level / no twin) a random failing item."""
        if hard and case.twins:
            return case.twins[int(rng.integers(len(case.twins)))]
        for _ in range(100):
            item = self.random_item(rng)
            if not case.accepts(item.key):
                return item
        raise RuntimeError(f"{type(self).__name__}: no random item fails the query after 100 draws")


class LabelTask(SceneTask):
    """Answers are object labels (classification, VQA)."""

    def label_twins(self, rng: np.random.Generator, scene: Scene, obj: Obj, limit: int) -> list[Item]:
        twins = self.world.twins(rng, scene, obj, limit + 8)
        labels = dict.fromkeys(alt.label() for attr, alt in twins if attr != "position")  # ordered set
        labels.pop(obj.label(), None)
        return [Item(label, key=label) for label in list(labels)[:limit]]

    def random_item(self, rng: np.random.Generator) -> Item:
        label = self.world.sample_object(rng, 0).label()
        return Item(label, key=label)


class ObjectClass(LabelTask):
    target_heldout = False

    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        obj = self.target(rng)
        scene = self.world.sample_scene(rng, 1, must_have=obj)
        label = obj.label()
        return Case(query=self.scene_item(scene, t.CLASSIFY), positive=Item(label, key=label),
                    twins=self.label_twins(rng, scene, obj, twins), accepts=lambda key: key == label)

    def target(self, rng: np.random.Generator) -> Obj:
        return self.world.sample_object(rng, int(rng.integers(self.world.cells)))


class NovelComboClass(ObjectClass):
    def target(self, rng: np.random.Generator) -> Obj:
        return heldout_object(self.world, rng)


class SceneVQA(LabelTask):
    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        scene = self.scene(rng, level)
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        label = obj.label()
        query = self.scene_item(scene, t.VQA.format(position=self.world.positions[obj.cell]))
        return Case(query=query, positive=Item(label, key=label), twins=self.label_twins(rng, scene, obj, twins),
                    accepts=lambda key: key == label)


class SceneT2I(SceneTask):
    def target(self, rng: np.random.Generator, level: Level) -> tuple[Scene, Obj]:
        scene = self.scene(rng, level)
        return scene, scene.objects[int(rng.integers(len(scene.objects)))]

    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        scene, obj = self.target(rng, level)
        world = self.world
        twin_items = [self.scene_item(scene.swap(obj, alt)) for _, alt in world.query_twins(rng, scene, obj, twins)]
        return Case(query=Item(t.T2I.format(caption=world.mention(obj))), positive=self.scene_item(scene),
                    twins=twin_items, accepts=lambda key: isinstance(key, Scene) and world.matches(key, obj))

    def random_item(self, rng: np.random.Generator) -> Item:
        return self.scene_item(self.scene(rng, Level(None, None, True)))


class NovelComboT2I(SceneT2I):
    def target(self, rng: np.random.Generator, level: Level) -> tuple[Scene, Obj]:
        obj = heldout_object(self.world, rng)
        n_objects = self.world.sample_n_objects(rng, level.min_objects, level.max_objects)
        return self.world.sample_scene(rng, n_objects, must_have=obj), obj


class TwoObjectT2I(SceneT2I):
    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        scene = self.scene(rng, Level(max(2, level.min_objects or 2), level.max_objects, True))
        world = self.world
        first, second = (scene.objects[int(i)] for i in rng.permutation(len(scene.objects))[:2])
        caption = f"{world.mention(first)} and {world.mention(second)}"
        changes = zip(world.query_twins(rng, scene, first, twins), world.query_twins(rng, scene, second, twins))
        interleaved = [(obj, alt) for pair in changes for obj, (_, alt) in zip((first, second), pair)]
        twin_items = [self.scene_item(scene.swap(obj, alt)) for obj, alt in interleaved[:twins]]
        return Case(query=Item(t.T2I.format(caption=caption)), positive=self.scene_item(scene), twins=twin_items,
                    accepts=lambda key: isinstance(key, Scene) and world.matches(key, first) and world.matches(key, second))


class SceneI2T(SceneTask):
    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        scene = self.scene(rng, level)
        caption = self.world.caption(scene)
        texts = []
        for _ in range(twins):
            obj = scene.objects[int(rng.integers(len(scene.objects)))]
            found = self.world.twins(rng, scene, obj, 1)
            if found:
                texts.append(self.world.caption(scene.swap(obj, found[0][1])))
        unique = sorted(set(texts) - {caption})
        return Case(query=self.scene_item(scene, t.I2T), positive=Item(caption, key=caption),
                    twins=[Item(text, key=text) for text in unique], accepts=lambda key: key == caption)

    def random_item(self, rng: np.random.Generator) -> Item:
        caption = self.world.caption(self.scene(rng, Level(None, None, True)))
        return Item(caption, key=caption)


class SceneIT2I(SceneTask):
    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        for _ in range(100):
            scene = self.scene(rng, level)
            obj = scene.objects[int(rng.integers(len(scene.objects)))]
            changes = self.world.twins(rng, scene, obj, 1)
            if changes:
                break
        else:
            raise RuntimeError("SceneIT2I: no scene with a possible change after 100 draws")
        attribute, new = changes[0]
        target = scene.swap(obj, new)
        change = t.CHANGES[attribute].format(target=self.world.describe(obj), value=self._value(new, attribute))
        others = [target.swap(new, alt) for _, alt in self.world.twins(rng, target, new, twins)]
        distinct = [s for s in dict.fromkeys([scene, *others]) if s != target]
        twin_items = [self.scene_item(s) for s in distinct[:twins]]
        return Case(query=self.scene_item(scene, t.IT2I.format(change=change)), positive=self.scene_item(target),
                    twins=twin_items, accepts=lambda key: key == target)

    def _value(self, obj: Obj, attribute: str) -> str:
        if attribute == "position":
            return self.world.positions[obj.cell]
        return str(getattr(obj, attribute))

    def random_item(self, rng: np.random.Generator) -> Item:
        return self.scene_item(self.scene(rng, Level(None, None, True)))


class SceneGrounding(SceneTask):
    def crop(self, obj: Obj, background: int) -> Item:
        crop_size = self.world.params.crop_size
        return Item(t.CROP_CANDIDATE, lambda: render_crop(obj, background, self.size, self.grid, crop_size),
                    key=obj.key())

    def case(self, rng: np.random.Generator, level: Level, twins: int) -> Case:
        scene = self.scene(rng, level)
        obj = scene.objects[int(rng.integers(len(scene.objects)))]
        found = [alt for attr, alt in self.world.twins(rng, scene, obj, twins + 8) if attr != "position"]
        mates = [self.crop(other, scene.background) for other in scene.objects if other.key() != obj.key()]
        return Case(query=self.scene_item(scene, t.GROUND.format(label=obj.label())),
                    positive=self.crop(obj, scene.background),
                    twins=[self.crop(alt, scene.background) for alt in found[:twins]],
                    accepts=lambda key: key == obj.key(), extras=mates)

    def random_item(self, rng: np.random.Generator) -> Item:
        return self.crop(self.world.sample_object(rng, 0), int(rng.integers(4)))


def heldout_object(world: World, rng: np.random.Generator) -> Obj:
    combos = sorted(world.heldout)
    if not combos:
        raise ValueError("the out-of-distribution subsets need data.scenes.heldout_combos >= 1")
    colour, shape = combos[int(rng.integers(len(combos)))]
    base = world.sample_object(rng, int(rng.integers(world.cells)))
    return replace(base, shape=shape, colour=colour, word="")


TASKS: dict[str, type[SceneTask]] = {
    "ObjectClass": ObjectClass, "NovelComboClass": NovelComboClass, "SceneVQA": SceneVQA,
    "SceneT2I": SceneT2I, "NovelComboT2I": NovelComboT2I, "TwoObjectT2I": TwoObjectT2I,
    "SceneI2T": SceneI2T, "SceneIT2I": SceneIT2I, "SceneGrounding": SceneGrounding,
}
