"""Vision attention in one call per layer: `backbone.attn_implementation: packed`.

Qwen2-VL and Qwen2.5-VL vision towers pack every image (and every window of Qwen2.5-VL's windowed
layers) back to back in one sequence with cumulative lengths `cu_seqlens`. Under "sdpa" or
"eager" they split that sequence on the host (`lengths.tolist()`, a device sync) and call
attention once per image or window: about 14k launches per forward for a 3B model at batch 8.
Under an implementation whose name contains "flash" they hand the whole packed sequence and
`cu_seqlens` to the attention function instead, so this module registers one under such a name
through transformers' AttentionInterface and selects it for the vision tower only (the language
model keeps SDPA):

* on CUDA in half precision, `torch.nn.attention.varlen.varlen_attn` (FlashAttention's
  variable-length kernel, no padding);
* elsewhere, every segment gathered into a padded batch `[segments, heads, longest, dim]` and one
  SDPA call with a key mask. All index arithmetic stays on the device: no host sync.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The vision towers route cu_seqlens to implementations whose name contains "flash".
PACKED = "metaembed_flash_packed"


def register() -> None:
    """Make PACKED known to transformers (idempotent)."""
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED, packed_attention)


def use_packed_vision_attention(model) -> None:
    """Switch a loaded Qwen2(.5)-VL model's vision tower to PACKED, leaving its language model as it is.

    Set on the loaded config rather than passed to from_pretrained: transformers treats a "flash"
    name given at load time as a kernel to fetch from the hub.
    """
    register()
    model.config.vision_config._attn_implementation = PACKED


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    scaling: float | None = None,
    dropout: float = 0.0,
    cu_seq_lens_q: torch.Tensor | None = None,
    max_length_q: int | None = None,
    **_: object,
) -> tuple[torch.Tensor, None]:
    """Non-causal attention within each segment of a packed sequence.

    query/key/value `[1, heads, total, dim]`; `cu_seq_lens_q` `[segments + 1]`; returns
    `([1, total, heads, dim], None)` as transformers' attention functions do.
    """
    if cu_seq_lens_q is None or query.shape[0] != 1:
        raise ValueError(f"{PACKED} is for packed vision sequences (batch 1 with cu_seqlens); "
                         "use sdpa for other attention layers")
    cu = cu_seq_lens_q.to(device=query.device, dtype=torch.int32)
    if max_length_q is None:  # transformers passes it; computing it here costs one host sync
        max_length_q = int((cu[1:] - cu[:-1]).max())
    q, k, v = (tensor[0].transpose(0, 1) for tensor in (query, key, value))  # [total, heads, dim]
    if _flash_varlen_applies(q, dropout if module.training else 0.0):
        from torch.nn.attention.varlen import varlen_attn

        out = varlen_attn(q, k, v, cu, cu, max_length_q, max_length_q, scale=scaling)
    else:
        out = _padded_attention(q, k, v, cu, max_length_q, scaling, dropout if module.training else 0.0)
    return out.unsqueeze(0), None


def _flash_varlen_applies(q: torch.Tensor, dropout: float) -> bool:
    return q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and dropout == 0.0


def _padded_attention(q, k, v, cu: torch.Tensor, longest: int, scaling: float | None, dropout: float) -> torch.Tensor:
    """[total, heads, dim] -> segments padded to `longest`, one SDPA call, back to [total, heads, dim]."""
    total = q.shape[0]
    starts, lengths = cu[:-1].long(), (cu[1:] - cu[:-1]).long()
    offsets = torch.arange(longest, device=q.device)
    real = offsets < lengths[:, None]  # [segments, longest]
    gather = (starts[:, None] + offsets).clamp(max=total - 1)  # padding reads any row; masked below

    def padded(tensor):  # [segments, heads, longest, dim]
        return tensor[gather].permute(0, 2, 1, 3)

    out = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=real[:, None, None, :],
                                         dropout_p=dropout, scale=scaling)
    # Token t of the packed sequence sits in its segment s at t - starts[s].
    position = torch.arange(total, device=q.device)
    segment = torch.searchsorted(cu[1:].long(), position, right=True)
    return out.permute(0, 2, 1, 3)[segment, position - starts[segment]]
