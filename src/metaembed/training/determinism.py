"""Repeatable training: one call fixes what decides a run's numbers besides its params and data.

On CPU two runs with the same params then give bit-identical weights, in one process or two, and a
resumed run ends where an uninterrupted one does. What it fixes, and why each matters:

* the seeds (torch, numpy, Python, and Lightning's worker seeding);
* the intra-op thread count: CPU reductions split their work by thread, so another count rounds
  differently. A run without `num_threads` uses the count torch chose at start-up, not whatever an
  earlier job in the same process (a test, an Optuna trial) left behind;
* deterministic algorithms on CPU (warn-only: an op without a deterministic kernel warns, never
  fails). Not on GPU, where the deterministic kernels can be slower and their cost is unmeasured:
  GPU runs may still differ in the last bits;
* the random stream itself: every DataLoader iterator draws its workers' base seed from the global
  generator unless it has its own, so validation would shift the stream (and every dropout mask
  after it) by how often it ran. Loaders take `loader_generator`, and checkpoints carry the stream
  (`rng_state` / `restore_rng_state`) so a resumed run continues it.
"""

from __future__ import annotations

import torch

# torch's own choice (OMP_NUM_THREADS or the cores), read before any run changes it.
STARTUP_THREADS = torch.get_num_threads()


def make_deterministic(seed: int, num_threads: int | None = None, accelerator: str = "cpu") -> None:
    """Seed everything and fix the thread count and algorithms, before the model is built.

    `accelerator` as in train.accelerator ("auto" means the GPU when there is one). The Trainer
    must not pass `deterministic=`, which would set the algorithms again.
    """
    import lightning as L

    L.seed_everything(seed, workers=True, verbose=False)
    torch.set_num_threads(num_threads or STARTUP_THREADS)
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    torch.use_deterministic_algorithms(on_cpu, warn_only=True)


def loader_generator(seed: int) -> torch.Generator:
    """A DataLoader's own generator: its workers' seeds no longer consume the global stream."""
    return torch.Generator().manual_seed(seed)


def rng_state() -> dict[str, torch.Tensor]:
    """The global random streams (CPU and the current GPU), as tensors a weights-only load accepts."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, torch.Tensor] | None) -> None:
    """Continue the streams `rng_state` saved; a checkpoint from before they were saved keeps the seed's."""
    if not state:
        return
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


class ResumesRandomState:
    """LightningModule mixin: a resumed run continues the random stream (dropout) where the
    checkpoint left it, so its weights match an uninterrupted run's."""

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_state"] = rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        restore_rng_state(checkpoint.get("rng_state"))
