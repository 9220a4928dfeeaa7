"""The LightningModule: a VLM with its LM head learning to write the captions of its images."""

from __future__ import annotations

import lightning as L
import torch

from metaembed.pretraining.params import PretrainParams
from metaembed.training.determinism import ResumesRandomState
from metaembed.training.schedule import adamw_warmup_cosine


class NonFiniteCaptionLossError(RuntimeError):
    """Pretraining produced a NaN or infinite loss; the last good checkpoint is kept."""


class CaptionModule(ResumesRandomState, L.LightningModule):
    def __init__(self, model, params: PretrainParams):
        super().__init__()
        self.model = model  # a *ForConditionalGeneration
        self.params = params
        self._val: list[torch.Tensor] = []

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        if not torch.isfinite(loss):
            raise NonFiniteCaptionLossError(
                f"caption loss is {loss.item()} at step {self.global_step}; lower pretrain.lr, then resume "
                "from the last checkpoint"
            )
        size = batch["input_ids"].shape[0]
        self.log("pretrain/loss", loss, prog_bar=True, batch_size=size)
        self.log("pretrain/lr", self.optimizers().param_groups[0]["lr"], batch_size=size)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        labels = batch.pop("labels")
        logits = self.model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        scored = target != -100
        loss = torch.nn.functional.cross_entropy(logits[scored], target[scored], reduction="sum")
        correct = (logits.argmax(-1)[scored] == target[scored]).sum()
        self._val.append(torch.stack([loss, correct.float(), scored.sum().float()]))

    def on_validation_epoch_end(self) -> None:
        loss, correct, count = torch.stack(self._val).sum(0)
        self._val.clear()
        self.log("val/caption_loss", loss / count, prog_bar=True)
        self.log("val/token_accuracy", correct / count)

    def configure_optimizers(self):
        return adamw_warmup_cosine(self.model.named_parameters(), self.params)

