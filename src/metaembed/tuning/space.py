"""The search space: valid Matryoshka group lists by construction, plus temperature and lr.

A structure of k groups picks k-1 smaller sizes from each ladder (the allowed r_q and r_c values
below the full size) as strictly increasing ladder positions, then appends the full group
(R_q, R_c, 1.0). Each position's range leaves room for the groups after it, so every sample is
nested, duplicate-free and within the model: `metaembed.losses.validate_groups` never rejects one.
The full group keeps weight 1.0: AdamW is invariant to the loss scale, so only the smaller
groups' weights relative to it matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metaembed.tuning.params import SpaceParams


@dataclass(frozen=True)
class Ladders:
    query: list[int]  # allowed r_q of the smaller groups, increasing, all below full_query
    candidate: list[int]
    full_query: int
    full_candidate: int

    @property
    def max_groups(self) -> int:
        return 1 + min(len(self.query), len(self.candidate))


def _ladder(sizes: list[int] | None, full: int) -> list[int]:
    if sizes is None:
        sizes = [2 ** k for k in range(full.bit_length()) if 2 ** k < full]
    return sorted({s for s in sizes if s < full})


def ladders(space: SpaceParams, num_query_meta: int, num_candidate_meta: int) -> Ladders:
    return Ladders(_ladder(space.query_sizes, num_query_meta), _ladder(space.candidate_sizes, num_candidate_meta),
                   num_query_meta, num_candidate_meta)


def group_range(space: SpaceParams, ladder: Ladders) -> tuple[int, int]:
    """[min, max] number of groups the ladders allow; raises when the space is empty."""
    low, high = space.num_groups
    high = min(high, ladder.max_groups)
    if low > high:
        raise ValueError(f"tune.space.num_groups: at least {low} groups need {low - 1} smaller sizes on each "
                         f"side, but the ladders below ({ladder.full_query}, {ladder.full_candidate}) have "
                         f"{len(ladder.query)} query and {len(ladder.candidate)} candidate sizes")
    return low, high


def suggest(trial, space: SpaceParams, ladder: Ladders) -> dict[str, Any]:
    """Sample one configuration on an Optuna trial: {"groups": [...], "temperature", "lr"}."""
    low, high = group_range(space, ladder)
    count = trial.suggest_int("num_groups", low, high)
    smaller = count - 1
    groups, prev_q, prev_c = [], -1, -1
    for i in range(smaller):
        room = smaller - 1 - i  # positions the later smaller groups still need
        prev_q = trial.suggest_int(f"q{i}", prev_q + 1, len(ladder.query) - 1 - room)
        prev_c = trial.suggest_int(f"c{i}", prev_c + 1, len(ladder.candidate) - 1 - room)
        weight = trial.suggest_float(f"w{i}", *space.weight, log=True)
        groups.append([ladder.query[prev_q], ladder.candidate[prev_c], weight])
    groups.append([ladder.full_query, ladder.full_candidate, 1.0])
    return {"groups": groups,
            "temperature": trial.suggest_float("temperature", *space.temperature, log=True),
            "lr": trial.suggest_float("lr", *space.lr, log=True)}


def encode(groups, temperature: float, lr: float, space: SpaceParams, ladder: Ladders) -> dict[str, Any] | None:
    """The trial params that `suggest` would turn into this configuration, or None when it lies
    outside the space (a size off the ladder, a weight or rate out of range). Weights are taken
    relative to the full group's, which the space fixes at 1.0 (AdamW is invariant to the loss scale)."""
    *smaller, full = [tuple(g) if len(g) == 3 else (*g, 1.0) for g in groups]
    if (full[0], full[1]) != (ladder.full_query, ladder.full_candidate) or float(full[2]) <= 0:
        return None
    smaller = [(r_q, r_c, weight / float(full[2])) for r_q, r_c, weight in smaller]
    low, high = group_range(space, ladder)
    inside = (lambda v, bounds: bounds[0] <= v <= bounds[1])
    if not (low <= len(smaller) + 1 <= high and inside(temperature, space.temperature) and inside(lr, space.lr)):
        return None
    params: dict[str, Any] = {"num_groups": len(smaller) + 1}
    for i, (r_q, r_c, weight) in enumerate(smaller):
        if r_q not in ladder.query or r_c not in ladder.candidate or not inside(weight, space.weight):
            return None
        params |= {f"q{i}": ladder.query.index(r_q), f"c{i}": ladder.candidate.index(r_c), f"w{i}": float(weight)}
    return params | {"temperature": float(temperature), "lr": float(lr)}


def is_complete(params: dict[str, Any]) -> bool:
    """Every param decode() reads was sampled (a worker killed while sampling leaves some unset)."""
    smaller = range(params.get("num_groups", 0) - 1)
    needed = {"num_groups", "temperature", "lr"} | {f"{k}{i}" for i in smaller for k in "qcw"}
    return needed <= params.keys()


def decode(params: dict[str, Any], ladder: Ladders) -> dict[str, Any]:
    """A finished trial's params back into {"groups", "temperature", "lr"}."""
    groups = [[ladder.query[params[f"q{i}"]], ladder.candidate[params[f"c{i}"]], params[f"w{i}"]]
              for i in range(params["num_groups"] - 1)]
    groups.append([ladder.full_query, ladder.full_candidate, 1.0])
    return {"groups": groups, "temperature": params["temperature"], "lr": params["lr"]}
