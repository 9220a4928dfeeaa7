"""GradCache (Gao et al., 2021): the contrastive loss of a whole batch with the activation memory
of one chunk (params.yaml `train.grad_cache_chunk`).

1. Every chunk of every side is encoded without a graph, down to its pooled states
   (`MetaEmbed.states`), and its random state is recorded.
2. The concatenated states become leaves; the objective (the model's head, the MMR loss and its
   cross-rank gather) runs on the full batch and is back-propagated: the head's parameters get
   their gradients and every state gets its own.
3. Each chunk is encoded again, now with a graph, under its recorded random state (the same
   dropout), and its cached state gradient is back-propagated through the encoder.

The cache holds the states before the head, not the embeddings: centering subtracts the batch
mean, so only the states before it are a function of one row. The parameters' gradients equal the
plain loss's up to float summation order (tests/training/test_grad_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

# A side's pooled states and mask ([B, R, hidden], [B, R]), keyed by batch entry ("query", ...).
States = dict[str, tuple[Tensor, Tensor]]


@dataclass
class _CachedSide:
    role: str  # "query" or "candidate"
    chunks: list[dict]
    states: list[Tensor] = field(default_factory=list)
    masks: list[Tensor] = field(default_factory=list)
    random_states: list[tuple[Tensor, Tensor | None]] = field(default_factory=list)


def grad_cache_backward(
    model,
    sides: dict[str, tuple[str, list[dict]]],
    objective: Callable[[States], Tensor],
    backward: Callable[[Tensor], None] = Tensor.backward,
) -> Tensor:
    """Accumulate into `model`'s parameters the gradients of `objective` on the whole batch.

    `sides` maps a batch entry to its role and its chunks of model inputs (in row order);
    `objective` takes every entry's full states and masks and returns the scalar loss, which
    `backward` back-propagates (Lightning's `manual_backward`, so that its precision plugin scales
    it; the chunks then carry that scale on). Returns the loss, detached.
    """
    cached = {name: _encode_without_graph(model, role, chunks) for name, (role, chunks) in sides.items()}
    leaves = {name: (torch.cat(side.states).requires_grad_(), torch.cat(side.masks)) for name, side in cached.items()}
    loss = objective(leaves)
    backward(loss)
    for name, side in cached.items():
        gradient = leaves[name][0].grad
        if gradient is None:  # the objective did not use this side
            continue
        for chunk, random_state, chunk_gradient in zip(side.chunks, side.random_states, gradient.split(_rows(side))):
            with _replayed(random_state, model.device):
                states, _ = model.states(side.role, **chunk)
            torch.autograd.backward(states, grad_tensors=chunk_gradient.to(states.dtype))
    return loss.detach()


def _encode_without_graph(model, role: str, chunks: list[dict]) -> _CachedSide:
    side = _CachedSide(role, chunks)
    for chunk in chunks:
        side.random_states.append(_random_state(model.device))
        with torch.no_grad():
            states, mask = model.states(role, **chunk)
        side.states.append(states)
        side.masks.append(mask)
    return side


def _rows(side: _CachedSide) -> list[int]:
    return [states.shape[0] for states in side.states]


def _random_state(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextmanager
def _replayed(state: tuple[Tensor, Tensor | None], device: torch.device) -> Iterator[None]:
    """Run under a recorded random state; the caller's random stream is left as it was."""
    cpu, cuda = state
    with torch.random.fork_rng(devices=[device] if cuda is not None else []):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
        yield
