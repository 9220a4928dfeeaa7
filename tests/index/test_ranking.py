"""The running top-k keeps score order and breaks ties by row, across blocks, whatever topk does."""

from __future__ import annotations

import torch

from metaembed.index.ranking import RunningTopK, block_top


def reference(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    return scores.gather(1, order), order


def test_blocks_merge_to_the_stable_sort_of_the_whole_row_with_many_ties() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (3, 97), generator=generator).float()  # heavy ties
    top = RunningTopK(3, 10)
    for start in range(0, 97, 13):
        top.push(scores[:, start:start + 13], torch.arange(start, min(start + 13, 97)))
    values, rows = top.result()
    expected_values, expected_rows = reference(scores, 10)
    assert torch.equal(values, expected_values)
    assert rows == expected_rows.tolist()


def test_block_top_without_ties_takes_topk_and_with_ties_the_lowest_columns() -> None:
    scores = torch.tensor([[0.125, 0.875, 0.5, 0.75], [1.0, 1.0, 1.0, 0.0]])
    values, columns = block_top(scores, 2)
    assert columns.tolist() == [[1, 3], [0, 1]]
    assert values.tolist() == [[0.875, 0.75], [1.0, 1.0]]


def test_minus_inf_rows_fill_no_result() -> None:
    top = RunningTopK(2, 3)
    top.push(torch.tensor([[0.5, float("-inf"), 0.2], [float("-inf")] * 3]), torch.arange(3))
    values, rows = top.result()
    assert rows == [[0, 2], []]
    assert values.shape == (2, 2) and bool(torch.isinf(values[1]).all())
