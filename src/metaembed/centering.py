"""Per-slot mean subtraction (params.yaml `model.centering`), kept apart from the model's forward.

Every input's pooled state shares one large component; on a from-scratch backbone it dominates,
and InfoNCE can collapse all embeddings onto one point (docs/learnability.md). Centering removes
the mean per vector slot before L2-normalising:

- in training, the batch mean, or each group's (data source's) own mean when groups are given;
  the groups' means are kept for `offset_penalty`;
- at inference, the mean `Calibration` measured with the final weights (like precise BatchNorm:
  a running mean would lag weights that move every step, by more than the signal).

Functions here take tensors and return tensors; the MetaEmbed module owns the buffers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from metaembed.prompts import Side

SIDES: tuple[Side, Side] = ("query", "candidate")
# Per side: (mean [slots, hidden], spread [slots]) of each group centred since the last penalty.
GroupRecord = dict[Side, list[tuple[torch.Tensor, torch.Tensor]]]
# The row indices of each group of a batch (e.g. a data source), in group order.
GroupRows = list[torch.Tensor]


class Calibration:
    """Running sums of pooled states per side while `MetaEmbed.calibrate_centering` runs."""

    def __init__(self) -> None:
        self.sums: dict[Side, list[torch.Tensor]] = {side: [] for side in SIDES}
        self.rows: dict[Side, int] = {side: 0 for side in SIDES}

    def add(self, side: Side, vectors: torch.Tensor) -> None:
        self.sums[side].append(vectors.detach().double().sum(dim=0))
        self.rows[side] += vectors.shape[0]

    def means(self, reduce: Callable | None = None) -> dict[Side, tuple[torch.Tensor, int]]:
        """Per side, the mean state per slot and the rows it came from; `reduce` sums over ranks."""
        found = {}
        for side in SIDES:
            if not self.sums[side]:
                raise ValueError(f"calibrate_centering got no {side} batch; give at least one of each side")
            total = torch.stack(self.sums[side]).sum(dim=0)
            rows = torch.tensor(float(self.rows[side]), dtype=torch.float64, device=total.device)
            if reduce is not None:
                total, rows = reduce(total), reduce(rows)
            found[side] = (total / rows, int(rows.item()))
        return found


def center_batch(vectors: torch.Tensor, groups: GroupRows | torch.Tensor | None, record: GroupRecord,
                 side: Side) -> torch.Tensor:
    """Training: remove the batch mean, or each group's own mean (recorded for the penalty).

    `groups`: each group's row indices, in group order (built on the host, so nothing waits on the
    device), or one group id per row (sorted into groups here, which reads the ids back)."""
    if groups is None:
        return vectors - vectors.mean(dim=0)
    if isinstance(groups, torch.Tensor):
        groups = [(groups == group).nonzero().squeeze(1) for group in groups.unique()]
    centered = torch.empty_like(vectors)
    for rows in groups:
        rows = rows.to(vectors.device, non_blocking=True)
        members = vectors.index_select(0, rows)
        mean = members.mean(dim=0)
        offsets = members - mean
        centered = centered.index_copy(0, rows, offsets)
        record[side].append((mean, offsets.detach().pow(2).sum(dim=-1).mean(dim=0)))
    return centered


def offset_penalty(record: GroupRecord, device: torch.device) -> torch.Tensor:
    """How far apart the groups' mean states lie, relative to the spread inside a group; clears `record`.

    Training removes each group's own mean, but inference removes one global mean: whatever
    offset tells the groups apart comes back there and, on a from-scratch backbone, swamps the
    content. Averaged over the sides that saw at least two groups; 0 otherwise.
    """
    terms = []
    for recorded in record.values():
        if len(recorded) > 1:
            means = torch.stack([mean for mean, _ in recorded])  # [groups, slots, hidden]
            spread = torch.stack([spread for _, spread in recorded]).mean(dim=0)  # [slots]
            between = (means - means.mean(dim=0)).pow(2).sum(dim=-1).mean(dim=0)
            terms.append((between / (spread + 1e-6)).mean())
        recorded.clear()
    return torch.stack(terms).mean() if terms else torch.zeros((), device=device)


def center_calibrated(vectors: torch.Tensor, center: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
    """Inference: remove the calibrated mean of the first `vectors.shape[1]` slots (a budget's prefix)."""
    if not bool(updates.all()):
        raise RuntimeError(
            "model.centering is on but the inference means were never measured: call "
            "MetaEmbed.calibrate_centering(batches) after training (metaembed train does it before saving)"
        )
    return vectors - center[: vectors.shape[1]].to(vectors.dtype)
