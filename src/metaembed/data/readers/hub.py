"""Real benchmark folders from a dataset hub id, through `datasets` (needs network access).

Each config and split is saved as parquet in the local layout the folder readers expect, so a hub
download is checked by the same rules as a local folder. Not exercised offline; kept so that real
data is one command away where the network allows:

    save_config("vidore/arxivqa_test_subsampled_beir", "corpus", "test", "data/raw/vidore/arxivqa_beir/corpus")
    save_config("TIGER-Lab/MMEB-eval", "MSCOCO_t2i", "test", "data/raw/mmeb-eval/MSCOCO_t2i")
    save_config("TIGER-Lab/MMEB-train", "MSCOCO_t2i", "original", "data/raw/mmeb-train/MSCOCO_t2i")
MMEB's images come as separate archives in those repositories; unpack them under the folder's
`images/` (see docs/data.md).
"""

from __future__ import annotations

from pathlib import Path


def save_config(repo_id: str, config: str | None, split: str, folder: str | Path) -> Path:
    """Download one config/split and write it as `<folder>/<split>-00000-of-00001.parquet`."""
    import datasets

    dataset = datasets.load_dataset(repo_id, config, split=split)
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            dataset = dataset.cast_column(name, datasets.Image(decode=False))  # keep the encoded bytes
    path = Path(folder) / f"{split}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(path))
    return path


def save_vidore(repo_id: str, folder: str | Path, split: str = "test") -> Path:
    """A ViDoRe set: BEIR configs (corpus, queries, qrels) if the repository has them, else its QA table."""
    import datasets

    folder = Path(folder)
    configs = datasets.get_dataset_config_names(repo_id)
    if {"corpus", "queries", "qrels"} <= set(configs):
        for config in ("corpus", "queries", "qrels"):
            save_config(repo_id, config, split, folder / config)
    else:
        save_config(repo_id, None, split, folder / "data")
    return folder
