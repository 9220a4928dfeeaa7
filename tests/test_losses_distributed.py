"""MMR loss under torch.distributed: two gloo CPU ranks against one process on the global batch.

Convention checked here (see metaembed.losses): each rank's loss is the mean over its local
queries, positives are gathered with gradients (their backward sums over ranks), and DDP averages
gradients. Hence mean(rank losses) == global loss, and for every rank's local q/pos/neg,
local_grad / world_size == the matching slice of the single-process gradient.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from metaembed.losses import MatryoshkaMultiVectorLoss

WORLD = 2
LOCAL_B, R_Q, R_C, DIM, RAW_DIM, K = 3, 4, 8, 5, 6, 2
GROUPS = [(1, 1, 1.0), (2, 4, 0.5), (4, 8, 2.0)]
TAU = 0.05
TIMEOUT_S = 90


def global_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Embeddings, raw encoder inputs and masks for WORLD * LOCAL_B queries, built identically
    in every process from the seed."""
    g = torch.Generator().manual_seed(seed)
    n = WORLD * LOCAL_B

    def mask(*shape):
        m = torch.rand(shape, generator=g) < 0.7
        return m.scatter(-1, torch.randint(0, shape[-1], (*shape[:-1], 1), generator=g), True)

    def unit(*shape):
        return torch.nn.functional.normalize(torch.randn(shape, generator=g, dtype=torch.float64), dim=-1)

    return {
        "q": unit(n, R_Q, DIM),
        "pos": unit(n, R_C, DIM),
        "neg": unit(n, K, R_C, DIM),
        "raw_q": torch.randn(n, R_Q, RAW_DIM, generator=g, dtype=torch.float64),
        "raw_pos": torch.randn(n, R_C, RAW_DIM, generator=g, dtype=torch.float64),
        "raw_neg": torch.randn(n, K, R_C, RAW_DIM, generator=g, dtype=torch.float64),
        "q_mask": mask(n, R_Q),
        "pos_mask": mask(n, R_C),
        "neg_mask": mask(n, K, R_C),
    }


def make_loss() -> MatryoshkaMultiVectorLoss:
    return MatryoshkaMultiVectorLoss(GROUPS, TAU, R_Q, R_C)


def make_encoder() -> torch.nn.Linear:
    torch.manual_seed(123)  # same initial weights in every process, as DDP would broadcast
    return torch.nn.Linear(RAW_DIM, DIM, dtype=torch.float64)


def encode(encoder: torch.nn.Module, data: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """One forward over all raw vectors (DDP expects one forward per backward), split back."""
    raws = [data["raw_q"], data["raw_pos"], data["raw_neg"]]
    flat = encoder(torch.cat([r.reshape(-1, RAW_DIM) for r in raws]))
    parts = flat.split([r.numel() // RAW_DIM for r in raws])
    return tuple(p.reshape(*r.shape[:-1], DIM) for p, r in zip(parts, raws))


def _expect_value_error(fn) -> str:
    try:
        fn()
    except ValueError as error:
        return str(error)
    return "no error raised"


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=TIMEOUT_S))
    try:
        data = global_batch()
        local = {k: v[rank * LOCAL_B : (rank + 1) * LOCAL_B] for k, v in data.items()}
        loss_fn = make_loss()
        result: dict[str, object] = {}

        leaves = {k: local[k].clone().requires_grad_() for k in ("q", "pos", "neg")}
        out = loss_fn(leaves["q"], leaves["pos"], leaves["neg"], local["q_mask"], local["pos_mask"], local["neg_mask"])
        out.loss.backward()
        result["loss"] = out.loss.detach()
        result["group_losses"] = out.group_losses
        result.update({f"grad_{k}": v.grad for k, v in leaves.items()})

        ddp = DistributedDataParallel(make_encoder())
        q, pos, neg = encode(ddp, local)
        loss_fn(q, pos, neg, local["q_mask"], local["pos_mask"], local["neg_mask"]).loss.backward()
        result["ddp_grads"] = [p.grad.clone() for p in ddp.module.parameters()]

        # Rank 1 holds one query fewer: both ranks must raise rather than hang in the gather.
        b = LOCAL_B - rank
        result["unequal_error"] = _expect_value_error(lambda: loss_fn(local["q"][:b], local["pos"][:b]))
        bad_q = local["q"].clone()
        if rank == 1:
            bad_q[0, 0, 0] = float("nan")
        result["nan_error"] = _expect_value_error(lambda: loss_fn(bad_q, local["pos"]))
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory) -> list[dict[str, object]]:
    out_dir = tmp_path_factory.mktemp("mmr_ddp")
    args = (_free_port(), str(out_dir))
    context = mp.start_processes(_worker, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1.0):  # re-raises a worker's exception here
            if time.monotonic() > deadline:
                pytest.fail(f"distributed workers did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.terminate()
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(WORLD)]


def _single_process():
    data = global_batch()
    loss_fn = make_loss()
    leaves = {k: data[k].clone().requires_grad_() for k in ("q", "pos", "neg")}
    out = loss_fn(leaves["q"], leaves["pos"], leaves["neg"], data["q_mask"], data["pos_mask"], data["neg_mask"])
    out.loss.backward()
    encoder = make_encoder()
    loss_fn(*encode(encoder, data), data["q_mask"], data["pos_mask"], data["neg_mask"]).loss.backward()
    return out, {k: v.grad for k, v in leaves.items()}, [p.grad for p in encoder.parameters()]


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 30)
def test_mean_of_rank_losses_equals_global_loss(rank_results):
    out, _, _ = _single_process()
    mean_loss = torch.stack([r["loss"] for r in rank_results]).mean()
    torch.testing.assert_close(mean_loss, out.loss.detach(), rtol=0, atol=1e-6)
    mean_groups = torch.stack([r["group_losses"] for r in rank_results]).mean(0)
    torch.testing.assert_close(mean_groups, out.group_losses, rtol=0, atol=1e-6)
    # Each rank alone must differ from the global value, or the check above proves nothing.
    assert all(abs(r["loss"].item() - out.loss.item()) > 1e-4 for r in rank_results)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 30)
def test_rank_gradients_averaged_like_ddp_equal_global_gradients(rank_results):
    _, grads, _ = _single_process()
    for rank, result in enumerate(rank_results):
        rows = slice(rank * LOCAL_B, (rank + 1) * LOCAL_B)
        for name in ("q", "pos", "neg"):
            torch.testing.assert_close(result[f"grad_{name}"] / WORLD, grads[name][rows], rtol=0, atol=1e-6)
    # Positives get gradient from the other rank's queries too (through the gather's backward):
    assert grads["pos"][LOCAL_B:].abs().sum() > 0


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 30)
def test_ddp_parameter_gradients_equal_single_process(rank_results):
    _, _, encoder_grads = _single_process()
    for result in rank_results:
        for ddp_grad, grad in zip(result["ddp_grads"], encoder_grads):
            torch.testing.assert_close(ddp_grad, grad, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT_S + 30)
def test_bad_inputs_on_one_rank_stop_every_rank(rank_results):
    for result in rank_results:
        assert "same local batch size" in result["unequal_error"]
    assert "q contains NaN or inf" in rank_results[1]["nan_error"]
    assert "rank(s) [1] received invalid inputs" in rank_results[0]["nan_error"]
