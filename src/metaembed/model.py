"""MetaEmbed: learnable meta tokens appended to a VLM's input; their last-layer states embed it.

Every input is laid out as `[input tokens | R_q query meta | R_c candidate meta]` (left padding,
causal attention). A query reads the states at the query-meta positions, a candidate at the
candidate-meta positions. Under causal attention nothing after the query-meta block can change
it, so queries are run with only their own meta tokens appended: same embeddings, fewer positions.

Pooling modes serve the baselines: `meta` (MetaEmbed), `last` (one vector from the last token)
and `tokens` (every non-padding output token, with a mask).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from metaembed import centering
from metaembed.backbones import Backbone, BackboneParams, load_backbone
from metaembed.backbones.processor import save_processor
from metaembed.batching import ImageLike, build_batch
from metaembed.model_params import LoraParams, ModelParams  # noqa: F401 (re-exported)
from metaembed.prompts import Side, check_side

CONFIG_FILE = "metaembed_config.json"
HEAD_FILE = "metaembed_head.safetensors"  # meta table and projection
BACKBONE_DIR = "backbone"  # full backbone weights (no LoRA)
ADAPTER_DIR = "adapter"  # LoRA adapter only; the base is reloaded from its source


class MetaEmbed(nn.Module):
    def __init__(self, backbone: Backbone, params: ModelParams | None = None, backbone_params: BackboneParams | None = None):
        super().__init__()
        self.params = params or ModelParams()
        self.backbone_params = backbone_params or BackboneParams(name_or_path=backbone.source)
        self.processor = backbone.processor
        self.family = backbone.family
        hidden = backbone.hidden_size
        self.decoder = backbone.model  # replaced by its PEFT wrapper when LoRA is on
        total_meta = self.params.num_query_meta + self.params.num_candidate_meta
        self.meta = nn.Embedding(total_meta, hidden) if self.params.pooling == "meta" else None
        # Without a bias under centering: a bias would add back, after centering, the shared component
        # centering removes, and the embeddings collapse onto it (../shared/LEARNABILITY.md's probe).
        self.projection = (nn.Linear(hidden, self.params.projection_dim, bias=not self.params.centering)
                           if self.params.projection_dim else None)
        if self.params.centering:
            slots = {"query": self.num_vectors("query"), "candidate": self.num_vectors("candidate")}
            if None in slots.values():
                raise ValueError("model.centering needs a fixed number of vectors per side (pooling meta or last)")
            # Mean pooled (pre-projection) state per side and vector slot, set by calibrate_centering.
            self.register_buffer("center_query", torch.zeros(slots["query"], hidden))
            self.register_buffer("center_candidate", torch.zeros(slots["candidate"], hidden))
            self.register_buffer("center_updates", torch.zeros(2, dtype=torch.long))  # rows measured: query, candidate
        self._calibrating: centering.Calibration | None = None
        self._group_means: centering.GroupRecord = {"query": [], "candidate": []}
        self._init_head()
        if self.params.lora.enabled:
            self._apply_lora()
        if self.params.gradient_checkpointing:
            self._base().gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # ---- public API -------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.params.projection_dim or self._base().config.text_config.hidden_size

    def num_vectors(self, side: Side) -> int | None:
        """Vectors per embedding of a side; None where it varies with the input (`tokens`)."""
        check_side(side)
        if self.params.pooling == "last":
            return 1
        if self.params.pooling == "tokens":
            return None
        return self.params.num_query_meta if side == "query" else self.params.num_candidate_meta

    def encode_queries(self, texts=None, images=None, budget: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode("query", texts, images, budget)

    def encode_candidates(self, texts=None, images=None, budget: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode("candidate", texts, images, budget)

    def encode(
        self,
        side: Side,
        texts: list[str | None] | None = None,
        images: list[ImageLike] | None = None,
        budget: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embed a mixed batch of text, image and text+image inputs: `(embeddings [B, R, D], mask [B, R])`.

        `budget` keeps the first r vectors of the side (`meta` pooling) and appends only the meta
        tokens those need, which is exactly the prefix of the full embedding at less cost.
        Autograd follows the caller's context: wrap in `torch.inference_mode()` to encode a corpus.
        """
        _refuse_bare(side, "texts", texts)
        _refuse_bare(side, "images", images)
        batch = build_batch(self.processor, side, texts, images)
        return self(side, **batch, budget=budget)

    def forward(
        self, side: Side, groups: centering.GroupRows | torch.Tensor | None = None, **inputs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone inputs (with `budget` and `position_ids`, see `states`) -> `(embeddings, mask)`.
        `groups` (training only): each data source's rows, or an id per row; centering then removes
        each group's own mean and records the groups' offsets for `pop_offset_penalty`."""
        return self.head(side, *self.states(side, **inputs), groups)

    def states(
        self,
        side: Side,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mm_token_type_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        budget: int | None = None,
        position_ids: torch.Tensor | None = None,
        **_: object,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The pooled last-layer states `[B, R, hidden]` and their mask, before `head`. Each row's
        states depend on that row alone, which is what lets GradCache encode a batch in chunks.
        `position_ids`: `positions(...)` of these inputs, when the caller computed them on the host."""
        check_side(side)
        count = self._check_budget(side, budget)
        if mm_token_type_ids is None:
            mm_token_type_ids = (input_ids == self.processor.image_token_id).long()
        if position_ids is None:  # before the move: inputs from a collator are still on the host
            position_ids = self.positions(input_ids, attention_mask, mm_token_type_ids, image_grid_thw)
        device = self.device
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        mm_token_type_ids, position_ids = mm_token_type_ids.to(device), position_ids.to(device)
        num_meta = self._meta_to_append(side, count)
        if num_meta:
            input_ids, attention_mask, mm_token_type_ids = _append_slots(input_ids, attention_mask, mm_token_type_ids, num_meta)
            position_ids = _append_positions(position_ids, num_meta)
        hidden = self._run_decoder(input_ids, attention_mask, position_ids, pixel_values, image_grid_thw, mm_token_type_ids, num_meta)
        return self._pool(hidden, attention_mask, count)

    def positions(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mm_token_type_ids: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        **_: object,
    ) -> torch.Tensor:
        """The backbone's multimodal rotary positions `[3, B, L]` of inputs without meta tokens,
        from the attention mask, so left padding never shifts them (batch-invariant). transformers
        walks each row's token types on the host: call it where the inputs are still on the host
        (training does, before the batch moves), and `states` extends it over the meta tokens."""
        if mm_token_type_ids is None:
            mm_token_type_ids = (input_ids == self.processor.image_token_id).long()
        positions, _ = self._base().get_rope_index(
            input_ids=input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw,
            attention_mask=attention_mask,
        )
        return positions

    def head(
        self, side: Side, states: torch.Tensor, mask: torch.Tensor, groups: centering.GroupRows | torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled states -> unit embeddings: centering, projection, L2 norm. In training, centering
        takes the batch's mean, so this part sees the whole batch at once."""
        if self._calibrating is not None:
            self._calibrating.add(side, states)
        if self.params.centering:
            states = self._center(side, states, groups)
        if self.projection is not None:
            states = self.projection(states)
        return F.normalize(states.float(), dim=-1) * mask.unsqueeze(-1), mask

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def trainable_parameters(self) -> dict[str, int]:
        return {name: p.numel() for name, p in self.named_parameters() if p.requires_grad}

    # ---- internals --------------------------------------------------------------------------

    def _base(self):
        """The underlying transformers model, through the PEFT wrapper if there is one."""
        return self.decoder.get_base_model() if hasattr(self.decoder, "get_base_model") else self.decoder

    def _init_head(self) -> None:
        embeddings = self._base().get_input_embeddings().weight
        # Start meta tokens at the scale of real token embeddings so early steps are well-conditioned.
        if self.meta is not None:
            with torch.no_grad():
                self.meta.weight.normal_(0.0, float(embeddings.detach().float().std()))
            self.meta.to(embeddings.dtype)
        if self.projection is not None:
            self.projection.to(embeddings.dtype)

    @torch.no_grad()
    def calibrate_centering(self, batches: Iterable[tuple[Side, dict]], reduce: Callable | None = None) -> None:
        """Measure each side's mean pooled state over `batches` with the current weights.

        Like precise BatchNorm: a running mean kept during training lags weights that move every
        step, and on a from-scratch model that lag is larger than the input-dependent part of the
        embedding, so inference would rank at chance. `batches` are (side, model inputs) pairs;
        `reduce` sums a tensor over ranks under DDP.
        """
        calibration = centering.Calibration()
        was_training, self._calibrating = self.training, calibration
        try:
            self.eval()
            for side, batch in batches:
                self(side, **batch)
        finally:
            self._calibrating = None
            self.train(was_training)
        for slot, (side, (mean, rows)) in enumerate(calibration.means(reduce).items()):
            getattr(self, f"center_{side}").copy_(mean)
            self.center_updates[slot] = rows

    def pop_offset_penalty(self) -> torch.Tensor:
        """How far apart the groups' (sources') mean states lie since the last call, relative to
        the spread inside a group (see `centering.offset_penalty`); 0 without two groups."""
        return centering.offset_penalty(self._group_means, self.device)

    def _center(self, side: Side, vectors: torch.Tensor, groups: centering.GroupRows | torch.Tensor | None = None) -> torch.Tensor:
        """Remove the shared component of each vector slot (see ModelParams.centering)."""
        if self._calibrating is not None:
            return vectors  # measuring the raw means: nothing to subtract yet
        if self.training and vectors.shape[0] > 1:
            return centering.center_batch(vectors, groups, self._group_means, side)
        return centering.center_calibrated(vectors, getattr(self, f"center_{side}"), self.center_updates)

    def _apply_lora(self) -> None:
        from peft import LoraConfig, get_peft_model

        lora = self.params.lora
        # A regex keeps LoRA on the language model: Qwen2.5-VL's vision MLP reuses the same names.
        pattern = rf".*language_model.*\.({'|'.join(lora.target_modules)})$"
        config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=pattern)
        self.decoder = get_peft_model(self.decoder, config)
        if self.params.gradient_checkpointing:
            self._base().enable_input_require_grads()

    def _check_budget(self, side: Side, budget: int | None) -> int | None:
        full = self.num_vectors(side)
        if budget is None:
            return full
        if self.params.pooling != "meta":
            raise ValueError(f"a budget applies to meta pooling only; this model pools with {self.params.pooling!r}")
        if not 1 <= budget <= full:
            raise ValueError(f"{side} budget {budget} is outside 1..{full} (the model has {full} {side} meta tokens)")
        return budget

    def _meta_to_append(self, side: Side, count: int | None) -> int:
        if self.meta is None:
            return 0
        # Candidate meta tokens sit after all query meta tokens, which they attend to.
        return count if side == "query" else self.params.num_query_meta + count

    def _run_decoder(self, input_ids, attention_mask, position_ids, pixel_values, image_grid_thw, mm_token_type_ids,
                     num_meta):
        base = self._base()
        embeds = base.get_input_embeddings()(input_ids)
        if num_meta:
            meta = self.meta.weight[:num_meta].to(embeds.dtype)
            embeds = torch.cat([embeds[:, :-num_meta], meta.unsqueeze(0).expand(embeds.shape[0], -1, -1)], dim=1)
        if image_grid_thw is not None:
            image_grid_thw = image_grid_thw.to(input_ids.device)
            pixel_values = pixel_values.to(input_ids.device)
        output = self.decoder(
            input_ids=input_ids,
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            pixel_values=pixel_values,
            image_grid_thw=image_grid_thw,
            mm_token_type_ids=mm_token_type_ids,
            use_cache=False,
        )
        return output.last_hidden_state

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor, count: int | None):
        batch = hidden.shape[0]
        if self.params.pooling == "meta":
            vectors = hidden[:, -count:]
        elif self.params.pooling == "last":
            vectors = hidden[:, -1:]  # left padding: the last position is always a real token
        else:
            return hidden, attention_mask.bool()
        return vectors, torch.ones(batch, vectors.shape[1], dtype=torch.bool, device=hidden.device)

    # ---- persistence ------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config, head and backbone (full, or the LoRA adapter) as safetensors."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        head = {name: tensor.detach().contiguous().cpu() for name, tensor in self._head_state().items()}
        save_file(head, directory / HEAD_FILE)
        if self.params.lora.enabled:
            self.decoder.save_pretrained(directory / ADAPTER_DIR, safe_serialization=True)
        else:
            self._base().save_pretrained(directory / BACKBONE_DIR, safe_serialization=True)
        save_processor(self.processor, directory / BACKBONE_DIR)
        config = {
            "format": 1,
            "family": self.family,
            "model": self.params.model_dump(),
            "backbone": self.backbone_params.model_dump(),
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: str | Path, device: str | torch.device = "cpu", trust_remote_code: bool = False
    ) -> "MetaEmbed":
        """Load what `save_pretrained` wrote. Only the caller can allow the folder's own Python code
        (`trust_remote_code`); a folder whose config asks for it is loaded without, with a warning."""
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} not found: not a folder written by MetaEmbed.save_pretrained")
        config = json.loads(config_path.read_text())
        params = ModelParams.model_validate(config["model"])
        backbone_params = _caller_trust(BackboneParams.model_validate(config["backbone"]), trust_remote_code, directory)
        _check_safetensors(directory)
        lora = params.lora.enabled
        source = backbone_params.name_or_path if lora else str(directory / BACKBONE_DIR)
        backbone = load_backbone(backbone_params, name_or_path=source)
        if lora:  # the base came from its source; the processor that trained it is saved here
            backbone.processor = _load_saved_processor(directory, backbone_params)
        model = cls(backbone, params.model_copy(update={"lora": params.lora.model_copy(update={"enabled": False})}), backbone_params)
        if lora:
            from peft import PeftModel

            model.decoder = PeftModel.from_pretrained(model.decoder, directory / ADAPTER_DIR, is_trainable=True)
            model.params = params
        model._load_head(load_file(directory / HEAD_FILE))
        return model.to(device).eval()  # like transformers: inference mode until .train()

    def _head_state(self) -> dict[str, torch.Tensor]:
        state = {}
        if self.meta is not None:
            state["meta.weight"] = self.meta.weight
        if self.projection is not None:
            state["projection.weight"] = self.projection.weight
            if self.projection.bias is not None:
                state["projection.bias"] = self.projection.bias
        if self.params.centering:
            state["center_query"] = self.center_query
            state["center_candidate"] = self.center_candidate
            state["center_updates"] = self.center_updates
        return state

    def _load_head(self, tensors: dict[str, torch.Tensor]) -> None:
        expected = set(self._head_state())
        if set(tensors) != expected:
            raise ValueError(f"{HEAD_FILE}: expected tensors {sorted(expected)}, found {sorted(tensors)}")
        with torch.no_grad():
            for name, parameter in self._head_state().items():
                parameter.copy_(tensors[name])


def _append_positions(position_ids: torch.Tensor, count: int) -> torch.Tensor:
    """Positions [3, B, L] extended by `count` text tokens at the end: each row goes on from its
    largest position, as the backbone's rope index would number tokens appended to the text."""
    start = position_ids.amax(dim=(0, 2), keepdim=True) + 1  # [1, B, 1]
    steps = torch.arange(count, device=position_ids.device, dtype=position_ids.dtype)
    return torch.cat([position_ids, (start + steps).expand(3, -1, -1)], dim=2)


def _append_slots(input_ids, attention_mask, mm_token_type_ids, count: int):
    """Room for `count` meta tokens at the end; their ids only matter as 'not an image token'."""
    batch = input_ids.shape[0]
    pad = torch.zeros(batch, count, dtype=input_ids.dtype, device=input_ids.device)
    return (
        torch.cat([input_ids, pad], dim=1),
        torch.cat([attention_mask, torch.ones_like(pad, dtype=attention_mask.dtype)], dim=1),
        torch.cat([mm_token_type_ids, torch.zeros_like(pad, dtype=mm_token_type_ids.dtype)], dim=1),
    )


def _load_saved_processor(directory: Path, backbone_params: BackboneParams):
    from metaembed.backbones import load_processor

    return load_processor(directory / BACKBONE_DIR, backbone_params.min_pixels, backbone_params.max_pixels)


def _caller_trust(backbone_params: BackboneParams, trust_remote_code: bool, directory: Path) -> BackboneParams:
    """The saved backbone settings with `trust_remote_code` as the caller gave it.

    A folder must not switch on its own code: with an `auto_map` in its config.json,
    transformers would import and run a .py file shipped beside the weights.
    """
    if backbone_params.trust_remote_code and not trust_remote_code:
        warnings.warn(
            f"{directory / CONFIG_FILE} sets backbone.trust_remote_code; ignored: a model folder cannot turn on "
            "its own code. Pass trust_remote_code=True to MetaEmbed.from_pretrained if you trust this folder",
            UserWarning,
            stacklevel=3,
        )
    return backbone_params.model_copy(update={"trust_remote_code": trust_remote_code})


def _check_safetensors(directory: Path) -> None:
    """Open every weights file's header first: a torn file then names itself, not just 'incomplete metadata'."""
    for path in sorted(directory.rglob("*.safetensors")):
        try:
            with safe_open(path, framework="pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise DamagedWeightsError(
                f"{path}: damaged or incomplete safetensors file ({error}); it was probably cut short while "
                "being written or copied. Re-download the model (`dvc pull`, or metaembed.load of the registered "
                "version) or re-run the stage that wrote it (`dvc repro train`)"
            ) from None


class DamagedWeightsError(ValueError):
    """A weights file of a saved model cannot be read; the message names it and what to do."""


# ---- inputs to encode_* -----------------------------------------------------------------------

# One input, not a list of them: iterating it would give one input per character or byte.
_SINGLE_INPUTS = (str, bytes, bytearray, Path, Image.Image, dict)


def _refuse_bare(side: Side, name: str, value: object) -> None:
    if isinstance(value, _SINGLE_INPUTS):
        example = f"[{value!r}]" if isinstance(value, str) and len(value) <= 60 else "[value]"
        raise TypeError(
            f"{side} {name} must be a list with one entry per input, got a single {type(value).__name__}; "
            f"wrap it in a list: {name}={example}"
        )


