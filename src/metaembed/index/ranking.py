"""A running top-k over blocks of scores, deterministic on ties.

Order: score descending, then row ascending. torch.topk alone does not promise which of several
equal scores it keeps, so each block's selection is checked for a tie at its k-th value and, only
then, redone with a stable full sort. Blocks must arrive in ascending row order (every row of a
block above every row seen before): a stable sort of [kept so far, new block] then keeps the
lower row first among equal scores.
"""

from __future__ import annotations

import torch


class RunningTopK:
    """Keeps the best k (score, row) pairs per query over blocks pushed in row order."""

    def __init__(self, num_queries: int, k: int) -> None:
        self.k = k
        self.scores = torch.empty(num_queries, 0, dtype=torch.float32)
        self.rows = torch.empty(num_queries, 0, dtype=torch.long)

    def push(self, scores: torch.Tensor, rows: torch.Tensor) -> None:
        """scores [B, n] for rows [n] (ascending, above every earlier row).

        A -inf score marks a row that must not be returned (removed): it only fills places no
        real row took, and `result` leaves it out.
        """
        if scores.shape[1] == 0:
            return
        block_scores, columns = block_top(scores, self.k)
        merged_scores = torch.cat([self.scores, block_scores], dim=1)
        merged_rows = torch.cat([self.rows, rows[columns]], dim=1)
        order = torch.sort(merged_scores, dim=1, descending=True, stable=True).indices[:, : self.k]
        self.scores = merged_scores.gather(1, order)
        self.rows = merged_rows.gather(1, order)

    def result(self) -> tuple[torch.Tensor, list[list[int]]]:
        """Scores [B, k'] (k' = places filled; -inf pads a query with fewer real rows) and the
        real rows per query."""
        real = torch.isfinite(self.scores)
        rows = [row[keep].tolist() for row, keep in zip(self.rows, real)]
        width = max((len(r) for r in rows), default=0)
        return self.scores[:, :width], rows


def block_top(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The min(k, n) best (scores, columns) per row of [B, n], ordered by score desc, column asc."""
    kept = min(k, scores.shape[1])
    values, columns = torch.topk(scores, kept, dim=1)
    # The chosen set is unique unless the k-th value also occurs outside it.
    if bool(((scores >= values[:, -1:]).sum(dim=1) == kept).all()):
        columns = columns.sort(dim=1).values
    else:
        columns = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :kept]
        columns = columns.sort(dim=1).values
    chosen = scores.gather(1, columns)
    order = torch.sort(chosen, dim=1, descending=True, stable=True).indices
    return chosen.gather(1, order), columns.gather(1, order)
