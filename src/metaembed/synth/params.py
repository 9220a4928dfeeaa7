"""params.yaml `data:`: what `metaembed data synth` generates (the synthetic benchmark).

Validated with pydantic so that a typo or an impossible value stops with the key's name
(`metaembed.config.section` prefixes every message with `data.`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from metaembed.synth.vocabulary import COLOURS, DEFAULT_SIGN_WORDS, SHAPES

TRAIN_SUBSETS = ("ObjectClass", "SceneVQA", "SceneT2I", "SceneI2T", "SceneIT2I", "SceneGrounding")
EVAL_IND_SUBSETS = TRAIN_SUBSETS
EVAL_OOD_SUBSETS = ("NovelComboClass", "NovelComboT2I", "TwoObjectT2I")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SceneParams(_Strict):
    """What a scene may hold; every image of the MMEB-style subsets is drawn from these."""

    image_size: int = Field(112, ge=48, le=448, multiple_of=16)
    grid: int = Field(3, ge=2, le=4)
    colours: list[str] = Field(default_factory=lambda: ["red", "green", "blue", "yellow", "orange", "purple",
                                                        "cyan", "white"], min_length=2)
    shapes: list[str] = Field(default_factory=lambda: ["circle", "square", "triangle", "diamond", "cross",
                                                       "ring"], min_length=2)
    sign_words: list[str] = Field(default_factory=lambda: list(DEFAULT_SIGN_WORDS))
    sign_prob: float = Field(0.1, ge=0.0, le=1.0)
    min_objects: int = Field(4, ge=1)
    max_objects: int = Field(7, ge=1)
    heldout_combos: int = Field(4, ge=0)
    crop_size: int = Field(56, ge=16, le=448)
    # Whether text-to-image queries name the object's position ("... at the top left"). Off, a query
    # names colour, shape and size, and any scene showing that object answers it.
    query_positions: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> SceneParams:
        _check_known("colours", self.colours, COLOURS)
        _check_known("shapes", self.shapes, SHAPES)
        for word in self.sign_words:
            if not (word.isalpha() and word.isascii() and 1 <= len(word) <= 3):
                raise ValueError(f"sign_words: {word!r} must be 1-3 ASCII letters (it is drawn inside one cell)")
        if not self.min_objects <= self.max_objects <= self.grid**2:
            raise ValueError(f"need min_objects <= max_objects <= grid**2 ({self.grid**2}), "
                             f"got {self.min_objects}, {self.max_objects}")
        if self.heldout_combos >= len(self.colours) * len(self.shapes) // 2:
            raise ValueError("heldout_combos must keep at least half of the colour-shape pairs for training")
        return self


class CurriculumLevel(_Strict):
    """One level of training data: its subsets are written as `<Subset>_<name>`."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    min_objects: int | None = Field(None, ge=1)
    max_objects: int | None = Field(None, ge=1)
    hard_negatives: bool = True


def _default_levels() -> list[CurriculumLevel]:
    return [CurriculumLevel(name="single", min_objects=1, max_objects=1, hard_negatives=False),
            CurriculumLevel(name="full", hard_negatives=True)]


class TrainParams(_Strict):
    rows_per_subset: int = Field(800, ge=1)
    subsets: list[str] = Field(default_factory=lambda: list(TRAIN_SUBSETS), min_length=1)
    curriculum: list[CurriculumLevel] = Field(default_factory=_default_levels, min_length=1)

    @model_validator(mode="after")
    def _known(self) -> TrainParams:
        _check_known("subsets", self.subsets, TRAIN_SUBSETS)
        names = [level.name for level in self.curriculum]
        if len(set(names)) != len(names):
            raise ValueError(f"curriculum: level names must be unique, got {names}")
        return self


class EvalParams(_Strict):
    queries_per_subset: int = Field(200, ge=1)
    candidates: int = Field(100, ge=2, le=1000)
    twins_per_query: int = Field(9, ge=0)
    in_distribution: list[str] = Field(default_factory=lambda: list(EVAL_IND_SUBSETS))
    out_of_distribution: list[str] = Field(default_factory=lambda: list(EVAL_OOD_SUBSETS))

    @model_validator(mode="after")
    def _known(self) -> EvalParams:
        _check_known("in_distribution", self.in_distribution, EVAL_IND_SUBSETS)
        _check_known("out_of_distribution", self.out_of_distribution, EVAL_OOD_SUBSETS)
        if self.twins_per_query >= self.candidates:
            raise ValueError("twins_per_query must be smaller than candidates (the positive needs a slot)")
        return self


class PageParams(_Strict):
    """Document pages of the ViDoRe-style sets."""

    width: int = Field(112, ge=64, le=1024, multiple_of=16)
    height: int = Field(112, ge=64, le=1024, multiple_of=16)
    min_pages_per_doc: int = Field(2, ge=1)
    max_pages_per_doc: int = Field(4, ge=1)
    train_docs: int = Field(300, ge=1)
    eval_docs: int = Field(40, ge=2)
    # Share of training pages that also get a query naming only their report. Figure queries can be
    # answered from the figure alone within a batch; these need the title read.
    document_query_rate: float = Field(0.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> PageParams:
        if self.min_pages_per_doc > self.max_pages_per_doc:
            raise ValueError("min_pages_per_doc must not exceed max_pages_per_doc")
        return self


class DataParams(_Strict):
    """params.yaml `data:`: everything `metaembed data synth` writes depends on these only."""

    seed: int = Field(0, ge=0)
    out_dir: str = "data/raw"
    scenes: SceneParams = Field(default_factory=SceneParams)
    train: TrainParams = Field(default_factory=TrainParams)
    eval: EvalParams = Field(default_factory=EvalParams)
    pages: PageParams = Field(default_factory=PageParams)


def _check_known(key: str, values: list[str], known: tuple[str, ...]) -> None:
    unknown = [value for value in values if value not in known]
    if unknown:
        raise ValueError(f"{key}: unknown {unknown}; choose from {list(known)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{key}: duplicates in {values}")
