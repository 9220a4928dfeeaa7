"""Training is repeatable on CPU: the same params give bit-identical weights, whatever ran before in
the same process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from metaembed.config import load_root
from metaembed.training import determinism
from metaembed.training.run import train


@pytest.fixture
def restore_torch_settings():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def test_make_deterministic_fixes_seeds_threads_and_algorithms(restore_torch_settings):
    torch.set_num_threads(determinism.STARTUP_THREADS + 1)  # what an earlier job may leave behind
    torch.use_deterministic_algorithms(False)
    determinism.make_deterministic(seed=5)
    assert torch.get_num_threads() == determinism.STARTUP_THREADS
    assert torch.are_deterministic_algorithms_enabled()
    first = torch.rand(3)
    determinism.make_deterministic(seed=5, num_threads=1)
    assert torch.get_num_threads() == 1 and torch.equal(torch.rand(3), first)


def test_a_loader_generator_leaves_the_global_stream_alone():
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    iter(DataLoader(range(4), generator=determinism.loader_generator(0)))
    assert torch.equal(torch.rand(1), expected)


def test_rng_state_round_trips():
    state = determinism.rng_state()
    drawn = torch.rand(4)
    determinism.restore_rng_state(state)
    assert torch.equal(torch.rand(4), drawn)
    determinism.restore_rng_state(None)  # a checkpoint from before the state was saved


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.rglob("*.safetensors"))
    return {f"{path.relative_to(folder)}:{key}": value for path in files for key, value in load_file(path).items()}


def test_two_identical_runs_in_one_process_give_bit_identical_weights(write_params, tmp_path, monkeypatch,
                                                                      restore_torch_settings):
    # num_threads unset: the run must not inherit the thread count an earlier job left behind.
    overrides = {"train.max_steps": 3, "train.num_threads": None, "train.accelerator": "cpu",
                 "train.val_every_n_steps": 100, "train.checkpoint_every_n_steps": 100}
    monkeypatch.setattr(determinism, "STARTUP_THREADS", 1)  # one thread is fastest on a busy test machine
    monkeypatch.chdir(tmp_path)
    runs = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        train(load_root(write_params(overrides, name=f"{name}/params.yaml")), tmp_path)
        runs.append(_weights(tmp_path / name / "model"))
        # What other work in the same process (a test, an Optuna trial, an evaluation) may leave behind.
        torch.set_num_threads(torch.get_num_threads() + 1)
        torch.use_deterministic_algorithms(False)
        torch.rand(100)
    first, second = runs
    assert first.keys() == second.keys() and first
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"{len(different)} of {len(first)} tensors differ between identical runs: {different[:3]}"
