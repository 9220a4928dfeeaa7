"""params.yaml `prepare:`: how `data/raw` is checked and turned into `data/prepared`.

Validated with pydantic so that a typo or an impossible value stops with the key's name
(`metaembed.config.section` prefixes every message with `prepare.`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MixtureParams(_Strict):
    # weight of a source = explicit weight, else rows ** size_exponent (0 = uniform, 1 = by size)
    size_exponent: float = Field(0.5, ge=0.0, le=1.0)
    weights: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _positive(self) -> MixtureParams:
        for name, weight in self.weights.items():
            if weight < 0:
                raise ValueError(f"weights.{name}: must be >= 0, got {weight}")
        return self


class CurriculumPhase(_Strict):
    """Until `until` (fraction of training), sources of each level are drawn with these weights."""

    until: float = Field(gt=0.0, le=1.0)
    levels: dict[str, float]


def _default_phases() -> list[CurriculumPhase]:
    # "*" covers sources of no synthetic level (the page sets, real MMEB or ViDoRe folders).
    return [CurriculumPhase(until=0.3, levels={"single": 1.0, "*": 0.0}),
            CurriculumPhase(until=1.0, levels={"single": 0.2, "full": 1.0, "*": 1.0})]


class PrepareParams(_Strict):
    """params.yaml `prepare:`: how `data/raw` (`data.out_dir`) is checked and turned into `data/prepared`."""

    out_dir: str = "data/prepared"
    on_bad_rows: Literal["fail", "quarantine"] = "fail"
    check_images: Literal["decode", "exists"] = "decode"
    max_problems_shown: int = Field(20, ge=1)
    mixture: MixtureParams = Field(default_factory=MixtureParams)
    curriculum: list[CurriculumPhase] = Field(default_factory=_default_phases, min_length=1)

    @model_validator(mode="after")
    def _phases(self) -> PrepareParams:
        ends = [phase.until for phase in self.curriculum]
        if ends != sorted(ends) or ends[-1] != 1.0:
            raise ValueError(f"curriculum: `until` must increase and end at 1.0, got {ends}")
        return self
