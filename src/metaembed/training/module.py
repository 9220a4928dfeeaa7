"""The LightningModule: MetaEmbed + Matryoshka multi-vector loss, AdamW, warm-up then cosine.

A batch holds three backbone inputs built by the collator: `query`, `positive` and, where the
data has one, `negative` (one hard negative per query). Validation ranks each held-out query's
own candidate list and reports Precision@1 at a small budget and at the full one.
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from collections.abc import Mapping

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import move_data_to_device

from metaembed.losses import MatryoshkaMultiVectorLoss
from metaembed.metrics import precision_at_1
from metaembed.model import MetaEmbed
from metaembed.scoring import maxsim
from metaembed.training.datamodule import negatives_per_query
from metaembed.training.determinism import ResumesRandomState
from metaembed.training.grad_cache import grad_cache_backward
from metaembed.training.params import LossParams, TrainParams
from metaembed.training.schedule import adamw_warmup_cosine


# Batch entries the collator fills and the side of the model each is encoded as.
ROLES = {"query": "query", "positive": "candidate", "negative": "candidate"}


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class TrainingCollapsedError(RuntimeError):
    """Every embedding fell onto one point: the model scores every candidate alike (chance)."""



class CollapseWatch:
    """Stops a run whose embeddings collapsed, before evaluation, sweeps and registration use it.

    A step looks collapsed when every group's loss lies within `margin` nats of the chance loss
    ln(candidates per query) and the embeddings' spread (mean squared distance of a side's unit
    vectors from their batch mean, per vector slot; 0 when all are one point, about 1 when they
    point anywhere) is below `min_spread` on one side. Both must hold for `window` steps in a row
    after warm-up: near-chance loss alone is normal early on, a small spread alone is not an error.
    """

    def __init__(self, window: int, after_step: int, margin: float = 0.05, min_spread: float = 0.01):
        self.window, self.after_step, self.margin, self.min_spread = window, after_step, margin, min_spread
        self.recent: deque[tuple[int, float, float, float]] = deque(maxlen=max(window, 1))

    def armed(self, step: int) -> bool:
        return self.window > 0 and step >= self.after_step

    def update(self, step: int, chance: float, worst_gap: float, spread: float) -> None:
        """Record one step (worst_gap: the largest |group loss - chance|); raise once collapsed."""
        if worst_gap > self.margin or spread > self.min_spread:
            self.recent.clear()
            return
        self.recent.append((step, chance, worst_gap, spread))
        if len(self.recent) == self.window:
            raise TrainingCollapsedError(self.message())

    def message(self) -> str:
        steps, chance = f"{self.recent[0][0]}-{self.recent[-1][0]}", self.recent[-1][1]
        gap, spread = max(r[2] for r in self.recent), max(r[3] for r in self.recent)
        return (
            f"training collapsed: at steps {steps} every loss group stayed within {gap:.3g} nats of chance "
            f"(ln of {math.exp(chance):.3g} candidates per query = {chance:.3f}) and the embeddings' spread was "
            f"at most {spread:.2g} (0: one point, 1: spread evenly): every input maps to one point and retrieval "
            "is at chance. No model is saved. Try a lower train.lr, a larger model.projection_dim (or null), "
            "model.centering: true, or a higher loss.temperature (a changed configuration starts afresh, not "
            "from these checkpoints)"
        )


def embedding_spread(vectors: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over vector slots of the batch's mean squared distance from the slot's batch mean
    (masked vectors left out; slots with fewer than two real vectors ignored)."""
    weight = mask.to(vectors.dtype).unsqueeze(-1)  # [B, R, 1]
    count = weight.sum(dim=0)  # [R, 1]
    mean = (vectors * weight).sum(dim=0) / count.clamp(min=1)
    squared = ((vectors - mean).pow(2) * weight).sum(dim=(0, 2)) / count.squeeze(-1).clamp(min=1)
    usable = (count.squeeze(-1) >= 2).to(squared.dtype)
    mean = (squared * usable).sum() / usable.sum().clamp(min=1)
    return torch.where(usable.sum() > 0, mean, torch.ones_like(mean))  # no host sync


def chance_loss(num_queries: int, num_positives: int, negative_mask: torch.Tensor | None) -> torch.Tensor:
    """InfoNCE when every candidate scores the same: mean over queries of ln(candidates it faces)."""
    candidates = torch.full((num_queries,), float(num_positives))
    if negative_mask is not None:
        candidates = candidates + negative_mask.reshape(num_queries, -1).any(dim=-1).float().cpu()
    return candidates.log().mean()


class MetaEmbedModule(ResumesRandomState, L.LightningModule):
    def __init__(self, model: MetaEmbed, train: TrainParams, loss: LossParams):
        super().__init__()
        self.model = model
        self.train_params = train
        self.loss_params = loss
        self.loss_fn = None if model.params.pooling == "tokens" else self._fixed_loss()
        self._val_budgets = _val_budgets(model, train)
        self._val_outputs: list[dict[str, torch.Tensor]] = []
        window = train.collapse_window
        self.collapse = CollapseWatch(window, after_step=train.warmup_steps)
        self.automatic_optimization = not train.grad_cache_chunk

    # ---- training ---------------------------------------------------------------------------

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Rotary positions computed while the inputs are still on the host: transformers reads each
        row's token types there, which on a GPU would stall the step once per row."""
        for inputs in batch.values():
            for chunk in inputs if isinstance(inputs, list) else [inputs]:
                if isinstance(chunk, Mapping) and "input_ids" in chunk:
                    chunk["position_ids"] = self.model.positions(**chunk)
        if "sources" in batch:  # likewise the rows of each data source, for centering
            batch["source_rows"] = source_rows(batch["sources"], batch["negative_index"])
        return batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        rows, index = batch["source_rows"], batch["negative_index"]
        sides = {name: (role, batch[name]) for name, role in ROLES.items() if batch.get(name) is not None}
        if self.train_params.grad_cache_chunk:
            return self._cached_step(sides, lambda states: self._objective(states, rows, index))
        states = {name: self.model.states(role, **inputs) for name, (role, inputs) in sides.items()}
        return self._objective(states, rows, index)

    def _objective(self, states: dict, rows: dict, negative_index: torch.Tensor) -> torch.Tensor:
        """The loss from every side's pooled states: the model's head (centering per source, `rows`
        from `source_rows`), the MMR loss and the offset penalty; logs the step and watches for collapse."""
        query, query_mask = self.model.head("query", *states["query"], groups=rows["pairs"])
        positive, positive_mask = self.model.head("candidate", *states["positive"], groups=rows["pairs"])
        negative = negative_mask = None
        if "negative" in states:
            found, found_mask = self.model.head("candidate", *states["negative"], groups=rows["negatives"])
            negative, negative_mask = negatives_per_query(found, found_mask, negative_index, query.shape[0])
        if self.model.params.pooling == "tokens":
            positive, positive_mask, negative, negative_mask = _pad_candidates(positive, positive_mask, negative, negative_mask)
        output = self._loss(query, positive)(query, positive, negative, query_mask, positive_mask, negative_mask)
        offset = self.model.pop_offset_penalty()
        loss = output.loss + self.loss_params.offset_penalty * offset
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step} (group losses {output.by_group()}); "
                "lower train.lr or raise loss.temperature, then resume from the last checkpoint"
            )
        size = query.shape[0]
        # sync_dist: each rank holds the mean over its own queries; their mean is the global loss.
        self.log("train/loss", output.loss, prog_bar=True, batch_size=size, sync_dist=True)
        for (r_q, r_c, _), value in zip(output.groups, output.group_losses):  # tensors: no host sync per step
            self.log(f"train/loss_{r_q}x{r_c}", value, batch_size=size, sync_dist=True)
        self.log("train/offset_penalty", offset, batch_size=size, sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        self._watch_collapse(output, query, query_mask, positive, positive_mask, negative_mask)
        return loss

    def _cached_step(self, sides: dict, objective) -> torch.Tensor:
        """One optimiser step with GradCache (training.grad_cache): manual optimisation, because the
        backward runs once for the loss and once per chunk."""
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        optimizer.zero_grad(set_to_none=True)
        # DDP's reducer expects one backward per forward: the gradients are averaged once, below.
        with getattr(self.trainer.strategy, "block_backward_sync", contextlib.nullcontext)():
            loss = grad_cache_backward(self.model, sides, objective, self.manual_backward)
        self._average_gradients_over_ranks()
        self.clip_gradients(optimizer, gradient_clip_val=self.train_params.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()
        scheduler.step()
        return loss

    def _average_gradients_over_ranks(self) -> None:
        if self.trainer.world_size == 1:
            return
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in trainable])
        flat = self.trainer.strategy.reduce(flat, reduce_op="mean")
        for parameter, gradient in zip(trainable, flat.split([p.numel() for p in trainable])):
            parameter.grad = gradient.view_as(parameter).clone()

    def _watch_collapse(self, output, query, query_mask, positive, positive_mask, negative_mask) -> None:
        """Log the embeddings' spread and feed CollapseWatch (after warm-up): a few reductions."""
        with torch.no_grad():
            spread = torch.minimum(embedding_spread(query, query_mask), embedding_spread(positive, positive_mask))
        self.log("train/embedding_spread", spread, batch_size=query.shape[0], sync_dist=True)
        if not self.collapse.armed(self.global_step):
            return
        world = self.trainer.world_size
        chance = chance_loss(query.shape[0], query.shape[0] * world, negative_mask)
        gap = (output.group_losses - chance.to(output.group_losses.device)).abs().max()
        stats = torch.stack([gap.float(), spread.float()])
        if world > 1:  # every rank must reach the same verdict, or the others hang in the next step
            stats = self.trainer.strategy.reduce(stats, reduce_op="mean")
        self.collapse.update(self.global_step, float(chance), *stats.tolist())

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.model.named_parameters(), self.train_params)

    def _fixed_loss(self) -> MatryoshkaMultiVectorLoss:
        if self.model.params.pooling == "last":  # single vector: no nested prefixes
            return _make_loss(self.loss_params, 1, 1, [(1, 1, 1.0)])
        return _make_loss(self.loss_params, self.model.num_vectors("query"), self.model.num_vectors("candidate"))

    def _loss(self, query: torch.Tensor, candidates: torch.Tensor) -> MatryoshkaMultiVectorLoss:
        if self.loss_fn is not None:
            return self.loss_fn
        # Token-level baseline: every token of the batch, one full group sized to this batch.
        r_q, r_c = query.shape[1], candidates.shape[1]
        return _make_loss(self.loss_params, r_q, r_c, [(r_q, r_c, 1.0)])

    # ---- validation -------------------------------------------------------------------------

    def on_validation_start(self) -> None:
        self.calibrate()

    def on_train_end(self) -> None:
        self.calibrate()  # the saved model's inference means match its final weights

    def calibrate(self) -> None:
        if not self.model.params.centering:
            return
        batches = self.trainer.datamodule.calibration_batches()
        on_device = ((side, move_data_to_device(inputs, self.device)) for side, inputs in batches)
        self.model.calibrate_centering(on_device, reduce=lambda t: self.trainer.strategy.reduce(t, reduce_op="sum"))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """One query with its candidate list (positive first)."""
        query, query_mask = self.model("query", **batch["query"])
        candidates, candidate_mask = self.model("candidate", **batch["candidates"])
        scores = {}
        for name, budget in self._val_budgets.items():
            scores[name] = maxsim(query, candidates, budget=budget, q_mask=query_mask, c_mask=candidate_mask)
        self._val_outputs.append(scores)

    def on_validation_epoch_end(self) -> None:
        if not self._val_outputs:
            return
        for name in self._val_budgets:
            precision = torch.cat([precision_at_1(out[name].float(), 0) for out in self._val_outputs]).mean()
            self.log(f"val/p_at_1_{name}", precision.float(), prog_bar=name == "full", sync_dist=True)
        self._val_outputs.clear()


def source_rows(sources: list[str], negative_index: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """The rows of each data source (the groups training centres apart), in order of first
    appearance: among the pairs, and among the hard negatives (`negative_index`: their pairs)."""
    ids = {name: index for index, name in enumerate(dict.fromkeys(sources))}
    pair_ids = torch.tensor([ids[name] for name in sources], dtype=torch.long)
    negative_ids = pair_ids[negative_index.cpu()]

    def rows(group_ids: torch.Tensor) -> list[torch.Tensor]:
        return [(group_ids == group).nonzero().squeeze(1) for group in group_ids.unique()]

    return {"pairs": rows(pair_ids), "negatives": rows(negative_ids)}


def _make_loss(loss: LossParams, num_query: int, num_candidate: int, groups=None) -> MatryoshkaMultiVectorLoss:
    return MatryoshkaMultiVectorLoss(
        groups=groups or loss.active_groups(),
        temperature=loss.temperature,
        num_query_vectors=num_query,
        num_candidate_vectors=num_candidate,
        scale_by_query_vectors=loss.scale_by_query_vectors,
    )


def _pad_candidates(positive, positive_mask, negative, negative_mask):
    """Token-level embeddings vary in length: pad positives and negatives to one length."""
    length = max(positive.shape[1], negative.shape[1] if negative is not None else 0)

    def pad(vectors, mask):
        extra = length - vectors.shape[1]
        return F.pad(vectors, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)

    positive, positive_mask = pad(positive, positive_mask)
    if negative is not None:
        negative, negative_mask = pad(negative, negative_mask)
    return positive, positive_mask, negative, negative_mask


def _val_budgets(model: MetaEmbed, train: TrainParams) -> dict[str, tuple[int, int] | None]:
    if model.params.pooling != "meta":
        return {"full": None}
    small = tuple(train.val_small_budget)
    return {f"{small[0]}x{small[1]}": small, "full": None}
