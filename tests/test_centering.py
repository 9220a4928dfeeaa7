"""The centering functions on tiny tensors; tests/test_model.py covers them inside the model."""

from __future__ import annotations

import pytest
import torch

from metaembed import centering


def _record():
    return {"query": [], "candidate": []}


def test_center_batch_removes_the_batch_mean_or_each_groups_own():
    vectors = torch.tensor([[[1.0, 0.0]], [[3.0, 0.0]], [[10.0, 2.0]], [[12.0, 4.0]]])  # [rows, slots, hidden]
    record = _record()
    torch.testing.assert_close(centering.center_batch(vectors, None, record, "query"), vectors - vectors.mean(dim=0))
    assert record["query"] == []
    grouped = centering.center_batch(vectors, torch.tensor([0, 0, 1, 1]), record, "query")
    torch.testing.assert_close(grouped[:, 0], torch.tensor([[-1.0, 0.0], [1.0, 0.0], [-1.0, -1.0], [1.0, 1.0]]))
    means = [mean for mean, _ in record["query"]]
    torch.testing.assert_close(torch.stack(means)[:, 0], torch.tensor([[2.0, 0.0], [11.0, 3.0]]))


def test_offset_penalty_grows_with_the_distance_between_group_means_and_clears_the_record():
    def penalty(offset):
        vectors = torch.tensor([[[0.0, 1.0]], [[0.0, -1.0]], [[offset, 1.0]], [[offset, -1.0]]])
        record = _record()
        centering.center_batch(vectors, torch.tensor([0, 0, 1, 1]), record, "candidate")
        value = centering.offset_penalty(record, torch.device("cpu"))
        assert record["candidate"] == []
        return value.item()

    assert penalty(0.0) == pytest.approx(0.0)
    assert 0 < penalty(1.0) < penalty(2.0)
    assert centering.offset_penalty(_record(), torch.device("cpu")).item() == 0.0  # fewer than two groups


def test_calibration_means_per_side_and_refuses_a_missing_side():
    calibration = centering.Calibration()
    calibration.add("query", torch.ones(2, 3, 4))
    calibration.add("query", 3 * torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="no candidate batch"):
        calibration.means()
    calibration.add("candidate", torch.zeros(1, 5, 4))
    means = calibration.means(reduce=lambda tensor: 2 * tensor)  # as if two ranks saw the same
    mean, rows = means["query"]
    assert rows == 8 and mean.shape == (3, 4)
    torch.testing.assert_close(mean, torch.full((3, 4), 2.0, dtype=torch.float64))


def test_center_calibrated_takes_the_budgets_prefix_and_refuses_unmeasured_means():
    center = torch.arange(8.0).reshape(4, 2)
    vectors = torch.ones(3, 2, 2)
    with pytest.raises(RuntimeError, match="calibrate_centering"):
        centering.center_calibrated(vectors, center, torch.tensor([0, 4]))
    torch.testing.assert_close(centering.center_calibrated(vectors, center, torch.tensor([4, 4])), vectors - center[:2])
