"""A training step's forward and backward sync with the host a fixed number of times, not once per
layer: a backbone with twice the decoder layers and vision blocks (attn_implementation packed)
syncs exactly as often. (The optimiser is left out: on CPU, AdamW reads every parameter's step
count on the host; on CUDA the module builds it fused, which keeps the counts on the device.)"""

from __future__ import annotations


from metaembed.backbones import load_backbone
from metaembed.backbones.tiny import TinySpec
from metaembed.benchmarks.host_syncs import counting_host_syncs
from metaembed.losses import MatryoshkaMultiVectorLoss
from metaembed.model import MetaEmbed, ModelParams
from metaembed.training.collator import PairCollator
from metaembed.training.datamodule import negatives_per_query
from metaembed.training.module import source_rows
from metaembed.training.sampler import PreparedTrainSet


def _step_syncs(backbone_params, prepared_dir, depth: int, attention: str) -> dict:
    params = backbone_params.model_copy(update={"attn_implementation": attention,
                                                "tiny": TinySpec(num_layers=depth, vision_depth=depth)})
    model = MetaEmbed(load_backbone(params), ModelParams(num_query_meta=4, num_candidate_meta=8, centering=True),
                      params).train()
    train_set = PreparedTrainSet(prepared_dir)
    batch = PairCollator(model.processor)([train_set[i] for i in range(0, len(train_set), len(train_set) // 8)][:8])
    loss_fn = MatryoshkaMultiVectorLoss([(1, 1, 1.0), (4, 8, 1.0)], 0.09, 4, 8, True)
    for side in ("query", "positive", "negative"):  # as MetaEmbedModule.on_before_batch_transfer does
        batch[side]["position_ids"] = model.positions(**batch[side])
    index = batch["negative_index"]
    rows = source_rows(batch["sources"], index)
    with counting_host_syncs() as counts:
        query, query_mask = model("query", **batch["query"], groups=rows["pairs"])
        positive, positive_mask = model("candidate", **batch["positive"], groups=rows["pairs"])
        negative, negative_mask = negatives_per_query(*model("candidate", **batch["negative"], groups=rows["negatives"]),
                                                      index, query.shape[0])
        output = loss_fn(query, positive, negative, query_mask, positive_mask, negative_mask)
        (output.loss + model.pop_offset_penalty()).backward()
    return dict(counts)


def test_a_deeper_backbone_adds_no_host_sync_to_a_training_step(backbone_params, prepared_dir):
    shallow = _step_syncs(backbone_params, prepared_dir, 2, "packed")
    deep = _step_syncs(backbone_params, prepared_dir, 4, "packed")
    assert deep == shallow
    # The reference path: the host splits q, k and v per image in each vision layer.
    assert _step_syncs(backbone_params, prepared_dir, 4, "sdpa")["tolist"] > deep["tolist"]
    print(f"host syncs per forward+backward of a training step: {shallow}")
