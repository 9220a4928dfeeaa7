"""The LightningModule: MetaEmbed + Matryoshka multi-vector loss, AdamW, warm-up then cosine.

A batch holds three backbone inputs built by the collator: `query`, `positive` and, where the
data has one, `negative` (one hard negative per query). Validation ranks each held-out query's
own candidate list and reports Precision@1 at a small budget and at the full one.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import move_data_to_device

from metaembed.losses import MatryoshkaMultiVectorLoss
from metaembed.metrics import precision_at_1
from metaembed.model import MetaEmbed
from metaembed.scoring import maxsim
from metaembed.training.datamodule import negatives_per_query
from metaembed.training.params import LossParams, TrainParams
from metaembed.training.schedule import adamw_warmup_cosine


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last good checkpoint is kept."""


class MetaEmbedModule(L.LightningModule):
    def __init__(self, model: MetaEmbed, train: TrainParams, loss: LossParams):
        super().__init__()
        self.model = model
        self.train_params = train
        self.loss_params = loss
        self.loss_fn = None if model.params.pooling == "tokens" else self._fixed_loss()
        self._val_budgets = _val_budgets(model, train)
        self._val_outputs: list[dict[str, torch.Tensor]] = []

    # ---- training ---------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        groups = _source_ids(batch["sources"], self.device)
        query, query_mask = self.model("query", **batch["query"], groups=groups)
        positive, positive_mask = self.model("candidate", **batch["positive"], groups=groups)
        negative = negative_mask = None
        if batch.get("negative") is not None:
            found, found_mask = self.model("candidate", **batch["negative"], groups=groups[batch["negative_index"]])
            negative, negative_mask = negatives_per_query(found, found_mask, batch["negative_index"], query.shape[0])
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
        for name, value in output.by_group().items():
            self.log(f"train/loss_{name}", value, batch_size=size, sync_dist=True)
        self.log("train/offset_penalty", offset, batch_size=size, sync_dist=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return loss

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


def _source_ids(sources: list[str], device: torch.device) -> torch.Tensor:
    """One integer per row naming its data source: the groups that training centres apart."""
    ids = {name: index for index, name in enumerate(dict.fromkeys(sources))}
    return torch.tensor([ids[name] for name in sources], dtype=torch.long, device=device)


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
