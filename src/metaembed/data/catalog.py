"""What is known about a subset by its name: MMEB's meta-tasks, and our generator's own notes."""

from __future__ import annotations

import json
from pathlib import Path

_MMEB_META_TASKS = {
    "classification": "ImageNet-1K N24News HatefulMemes VOC2007 SUN397 Place365 ImageNet-A ImageNet-R ObjectNet "
                      "Country211",
    "vqa": "OK-VQA A-OKVQA DocVQA InfographicsVQA ChartQA Visual7W ScienceQA VizWiz GQA TextVQA",
    "retrieval": "VisDial CIRR VisualNews_t2i VisualNews_i2t MSCOCO_t2i MSCOCO_i2t NIGHTS WebQA FashionIQ "
                 "Wiki-SS-NQ OVEN EDIS",
    "visual_grounding": "MSCOCO RefCOCO RefCOCO-Matching Visual7W-Pointing",
}
# Out-of-distribution in the MMEB paper's split.
_MMEB_OOD = set("Place365 ImageNet-A ImageNet-R ObjectNet Country211 ScienceQA VizWiz GQA TextVQA FashionIQ "
                "Wiki-SS-NQ OVEN EDIS RefCOCO-Matching Visual7W-Pointing".split())


def _normal(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


_BY_NAME = {_normal(name): (task, name in _MMEB_OOD) for task, names in _MMEB_META_TASKS.items()
            for name in names.split()}


class Catalog:
    """Meta-task, split and curriculum level of each subset: from `synth.json` when the folder was
    generated here, from MMEB's published lists otherwise, else "unknown"."""

    def __init__(self, raw_dir: Path) -> None:
        path = Path(raw_dir) / "synth.json"
        self.synth = json.loads(path.read_text()) if path.is_file() else {}

    def train_info(self, subset: str) -> dict:
        info = self.synth.get("mmeb_train", {}).get(subset)
        if info:
            return {"meta_task": info["meta_task"], "level": info["level"]}
        return {"meta_task": self.meta_task(subset), "level": None}

    def eval_info(self, subset: str) -> dict:
        info = self.synth.get("mmeb_eval", {}).get(subset)
        if info:
            return {"meta_task": info["meta_task"], "split": info["split"]}
        known = _BY_NAME.get(_normal(subset))
        split = "unknown" if known is None else ("out_of_distribution" if known[1] else "in_distribution")
        return {"meta_task": self.meta_task(subset), "split": split}

    @staticmethod
    def meta_task(subset: str) -> str:
        known = _BY_NAME.get(_normal(subset))
        return known[0] if known else "unknown"
