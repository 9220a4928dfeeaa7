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
