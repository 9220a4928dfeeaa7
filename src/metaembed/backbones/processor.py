"""An image-only Qwen2-VL processor.

transformers' Qwen2VLProcessor also wants a video processor, which needs torchvision; this
project embeds images and text only, so the subclass drops the video slot. It serves both
Qwen2-VL and Qwen2.5-VL checkpoints, whose processors differ only in the video path.
"""

from __future__ import annotations

from transformers import Qwen2VLProcessor


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    # ProcessorMixin derives its sub-processors from this signature: no video_processor here.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    @property
    def visual_tokens_per_merge(self) -> int:
        return self.image_processor.merge_size**2


def save_processor(processor, directory) -> None:
    """`processor.save_pretrained`, without the padding and truncation the fast tokenizer keeps from
    its last padded call: otherwise tokenizer.json (and the model folder's hash) depends on whether a
    batch was tokenized before saving, e.g. a run resumed at its last step saved a different folder.
    Every call sets its own padding and truncation again, so dropping the leftover changes nothing."""
    backend = getattr(getattr(processor, "tokenizer", None), "backend_tokenizer", None)
    if backend is not None:
        backend.no_padding()
        backend.no_truncation()
    processor.save_pretrained(directory)
