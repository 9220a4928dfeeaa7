"""Sampling weights of the training sources, per curriculum phase.

A source's base weight is its explicit weight from params, else rows ** size_exponent (the usual
temperature sampling between uniform and proportional). Each phase multiplies it by the weight of
the source's level ("*" for sources of no level) and normalises.
"""

from __future__ import annotations

from metaembed.data.params import PrepareParams

ANY_LEVEL = "*"


def base_weights(rows: dict[str, int], params: PrepareParams) -> dict[str, float]:
    unknown = sorted(set(params.mixture.weights) - set(rows))
    if unknown:
        raise ValueError(f"prepare.mixture.weights names unknown training source(s) {unknown}; "
                         f"known: {sorted(rows)}")
    return {name: float(params.mixture.weights.get(name, count ** params.mixture.size_exponent))
            for name, count in rows.items()}


def phases(sources: dict[str, dict], params: PrepareParams) -> list[dict]:
    """[{until, weights: {source: probability}}]; a phase whose weights all vanish is an error."""
    result = []
    for index, phase in enumerate(params.curriculum):
        raw = {}
        for name, info in sources.items():
            level = info.get("level") or ANY_LEVEL
            factor = phase.levels.get(level, phase.levels.get(ANY_LEVEL, 1.0))
            raw[name] = info["weight"] * factor
        total = sum(raw.values())
        if total <= 0:
            raise ValueError(f"prepare.curriculum[{index}] gives every training source weight 0 "
                             f"(levels {phase.levels}, sources' levels "
                             f"{sorted({i.get('level') or ANY_LEVEL for i in sources.values()})})")
        result.append({"until": phase.until, "weights": {name: w / total for name, w in raw.items()}})
    return result
