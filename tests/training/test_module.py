"""The training module's collapse watch: a run whose embeddings fell onto one point stops with a
clear error and saves no model; healthy runs, warm-up included, are never stopped."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from metaembed.cli import main
from metaembed.config import load_root
from metaembed.model import MetaEmbed
from metaembed.training.module import (
    CollapseWatch,
    TrainingCollapsedError,
    chance_loss,
    embedding_spread,
)
from metaembed.training.params import TrainParams
from metaembed.training.run import train


def test_spread_is_zero_for_one_point_about_one_for_random_directions_and_skips_masked_vectors():
    torch.manual_seed(0)
    random = F.normalize(torch.randn(64, 3, 16), dim=-1)
    one_point = random[:1].expand(64, 3, 16)
    everywhere = torch.ones(64, 3, dtype=torch.bool)
    assert embedding_spread(one_point, everywhere).item() == pytest.approx(0.0, abs=1e-6)
    assert 0.9 < embedding_spread(random, everywhere).item() <= 1.0
    # Masked (padding) vectors do not count: the real ones are all one point.
    mixed = torch.cat([one_point[:32], random[32:]])
    first_half = torch.arange(64).unsqueeze(1).expand(64, 3) < 32
    assert embedding_spread(mixed, first_half).item() == pytest.approx(0.0, abs=1e-6)


def test_chance_loss_counts_each_querys_candidates():
    has_negative = torch.tensor([[True, True], [False, False], [True, False], [False, False]])
    assert chance_loss(4, 8, has_negative).item() == pytest.approx((2 * math.log(9) + 2 * math.log(8)) / 4)
    assert chance_loss(4, 8, None).item() == pytest.approx(math.log(8))


def test_the_watch_needs_a_whole_window_of_collapsed_steps_after_warm_up():
    watch = CollapseWatch(window=3, after_step=10)
    assert not watch.armed(9) and watch.armed(10)
    watch.update(10, math.log(33), 0.01, 1e-4)
    watch.update(11, math.log(33), 0.40, 1e-4)  # loss away from chance: not collapsed, window restarts
    watch.update(12, math.log(33), 0.01, 0.5)  # near chance but spread out: normal early on
    watch.update(13, math.log(33), 0.00, 1e-5)
    watch.update(14, math.log(33), 0.02, 1e-5)
    with pytest.raises(TrainingCollapsedError) as raised:
        watch.update(15, math.log(33), 0.01, 2e-5)
    message = str(raised.value)
    assert "steps 13-15" in message and "33 candidates" in message and "3.497" in message
    assert "2e-05" in message and "train.lr" in message and "projection_dim" in message
    assert not CollapseWatch(window=0, after_step=0).armed(100)  # window 0 turns the check off


def _collapse_every_embedding(monkeypatch) -> None:
    """All inputs land on (nearly) one point, as when the projection's bias outgrows its input."""
    head = MetaEmbed.head

    def collapsed(self, side, *args, **kwargs):
        vectors, mask = head(self, side, *args, **kwargs)
        return F.normalize(vectors * 1e-4 + 1.0, dim=-1) * mask.unsqueeze(-1), mask

    monkeypatch.setattr(MetaEmbed, "head", collapsed)


COLLAPSE_WINDOW = TrainParams().collapse_window
_LONG_ENOUGH = {"train.max_steps": COLLAPSE_WINDOW + 4, "train.val_every_n_steps": 1000,
                "train.checkpoint_every_n_steps": 1000}


def test_a_collapsed_training_stops_with_a_clear_error_and_saves_no_model(write_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _collapse_every_embedding(monkeypatch)
    with pytest.raises(TrainingCollapsedError, match=r"training collapsed: at steps \d+-\d+ .*ln of 9 candidates"):
        main(["train", "--params", str(write_params(_LONG_ENOUGH))])
    assert not (tmp_path / "model").exists() and not (tmp_path / "report" / "metrics.json").exists()


def test_a_healthy_training_of_the_same_length_is_not_stopped(write_params, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = train(load_root(write_params(_LONG_ENOUGH)), tmp_path)
    assert report["metrics"]["steps"] == COLLAPSE_WINDOW + 4
    assert report["metrics"]["train/embedding_spread"] > 0.1
