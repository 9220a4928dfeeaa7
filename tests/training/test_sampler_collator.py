"""Batches: single-source sub-batches by mixture weight and curriculum phase, no repeated positive,
and the collator's prompted, left-padded inputs."""

from __future__ import annotations

from collections import Counter

import pytest

from metaembed.data.params import PrepareParams
from metaembed.data.prepare import run_prepare
from metaembed.data.records import ImageRef, Side, TrainPair
from metaembed.training.collator import PairCollator, side_inputs
from metaembed.training.sampler import MixtureBatchSampler, PreparedTrainSet


@pytest.fixture(scope="module")
def prepared(raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    run_prepare(raw_dir, PrepareParams(out_dir=str(out), check_images="exists"), progress=False)
    return out


def test_sub_batches_come_from_one_source_and_follow_the_curriculum(prepared):
    dataset = PreparedTrainSet(prepared)
    sampler = MixtureBatchSampler(dataset, batch_size=8, sub_batch_size=4, total_steps=50, seed=0)
    assert len(sampler) == 50
    seen_early, seen_late = Counter(), Counter()
    for step, batch in enumerate(sampler):
        assert len(batch) == 8
        halves = [{dataset[i].source for i in batch[:4]}, {dataset[i].source for i in batch[4:]}]
        assert all(len(sources) == 1 for sources in halves)
        keys = [(dataset[i].positive.text, dataset[i].positive.image) for i in batch]
        assert len(set(keys)) == len(keys)  # no positive twice in one batch
        (seen_early if step < 15 else seen_late).update(source for h in halves for source in h)
    assert seen_early and all(source.endswith("_single") for source in seen_early)
    assert any(source.endswith("_full") for source in seen_late) and "colpali_train_set" in seen_late


def test_sampler_is_deterministic_per_seed(prepared):
    dataset = PreparedTrainSet(prepared)
    a = list(MixtureBatchSampler(dataset, 8, 4, 10, seed=3))
    assert a == list(MixtureBatchSampler(dataset, 8, 4, 10, seed=3))
    assert a != list(MixtureBatchSampler(dataset, 8, 4, 10, seed=4))


def test_sampler_rejects_impossible_sizes(prepared):
    dataset = PreparedTrainSet(prepared)
    with pytest.raises(ValueError, match="multiple of sub_batch_size"):
        MixtureBatchSampler(dataset, 10, 4, 5)
    with pytest.raises(ValueError, match="distinct positives"):
        next(iter(MixtureBatchSampler(dataset, 64, 64, 1)))


class RecordingProcessor:
    """Stands in for the backbone processor: records what the collator asks of it."""

    def __init__(self):
        self.calls = []

    def __call__(self, side_name, texts, images):
        self.calls.append((side_name, texts, images))
        return {"n": len(texts)}


def test_collator_pairs_queries_positives_and_existing_negatives(monkeypatch):
    processor = RecordingProcessor()
    monkeypatch.setattr("metaembed.batching.build_batch", lambda proc, side, texts, images: proc(side, texts, images))
    page = ImageRef(data=b"png-bytes")
    pairs = [TrainPair("a", 0, Side("Query one"), Side("<|image_1|>\\nRepresent", ImageRef(path="x.png")),
                       Side("other")),
             TrainPair("b", 1, Side("Query two"), Side("", page), None)]
    batch = PairCollator(processor)(pairs)
    assert [call[0] for call in processor.calls] == ["query", "candidate", "candidate"]
    assert processor.calls[1][2] == ["x.png", b"png-bytes"]
    assert processor.calls[2][1] == ["other"]
    assert batch["negative_index"].tolist() == [0] and batch["sources"] == ["a", "b"]
    assert side_inputs([Side("t")]) == (["t"], [None])


def test_collator_with_the_tiny_processor(prepared, backbone_params):
    from metaembed.backbones import load_processor
    from metaembed.backbones.tiny import ensure_tiny

    path = ensure_tiny(backbone_params.cache_dir)
    processor = load_processor(path, backbone_params.min_pixels, backbone_params.max_pixels)
    dataset = PreparedTrainSet(prepared, sources=["SceneGrounding_full", "colpali_train_set"])
    pairs = [dataset[0], dataset[1], dataset[len(dataset) - 1]]
    batch = PairCollator(processor)(pairs)
    query, positive = batch["query"], batch["positive"]
    assert query["input_ids"].shape[0] == 3 and positive["input_ids"].shape[0] == 3
    assert (query["attention_mask"][:, -1] == 1).all()  # left padding: every row ends with a real token
    image_token = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    visual = (query["input_ids"] == image_token).sum(dim=1)
    assert visual[0] == 49  # a 112 px scene: 7 x 7 merged visual tokens
    assert "<|image_1|>" not in processor.tokenizer.decode(query["input_ids"][0])
    assert batch["negative_index"].tolist() == [0, 1]  # the page pair has no hard negative
