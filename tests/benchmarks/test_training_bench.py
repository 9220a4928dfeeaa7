"""metaembed bench train on the tiny preset (CPU): the report's figures are consistent."""

import json

from metaembed.benchmarks.training import Settings, _peak_tflops, make_inputs, model_flops, run_benchmark
from metaembed.cli import main


def test_tiny_benchmark_reports_consistent_rates(tmp_path):
    settings = Settings(preset="tiny", batch=2, image_px=112, steps=1, warmup=1, encode_batch=2)
    report = run_benchmark(settings, "cpu")
    assert 0 < report["trainable_parameters"] < report["total_parameters"]  # LoRA: the base is frozen
    assert report["visual_tokens_per_image"] > 0
    assert report["samples_per_second"] == settings.batch / report["train_seconds_per_step"]
    assert report["tokens_per_second"] == report["positions_per_step"] / report["train_seconds_per_step"]
    assert report["model_tflops_per_step"] > 0 and report["mfu"] is None  # no known peak for a CPU
    assert all(rate > 0 for rate in report["encode_per_second"].values())
    assert len(report["losses"]) == settings.warmup + settings.steps
    assert report["settings"]["attn"] == "packed"
    assert report["host_syncs_per_step"].get("tolist", 0) > 0  # per forward: grid and rope bookkeeping
    ops = {row["op"] for row in report["profile"]}
    assert len(report["profile"]) == 15 and ops & {"aten::mm", "aten::addmm", "aten::bmm"}
    assert 0 < sum(row["share"] for row in report["profile"]) <= 1.0 + 1e-9


def test_grad_cache_benchmark_steps_the_whole_batch_in_chunks():
    plain = run_benchmark(Settings(preset="tiny", batch=4, image_px=112, steps=1, warmup=0, encode_batch=2), "cpu")
    cached = run_benchmark(Settings(preset="tiny", batch=4, image_px=112, steps=1, warmup=0, encode_batch=2,
                                    grad_cache_chunk=2), "cpu")
    # The same four pairs' work, so the same model FLOPs and positions; one step trains on all of them.
    assert cached["positions_per_step"] == plain["positions_per_step"]
    assert cached["model_tflops_per_step"] == plain["model_tflops_per_step"]
    assert cached["samples_per_second"] == 4 / cached["train_seconds_per_step"]


def test_model_flops_grow_with_the_batch():
    from metaembed.benchmarks.training import build_model

    settings = Settings(preset="tiny", image_px=112)
    model = build_model(settings, "cpu")
    one, two = (model_flops(model, make_inputs(model, settings, n, "candidate"), 64) for n in (1, 2))
    assert two == 2 * one > 0


def test_peak_lookup_and_cli(tmp_path):
    assert _peak_tflops("NVIDIA H100 80GB HBM3") == 989.4 and _peak_tflops("cpu (x86_64)") is None
    out = tmp_path / "train.json"
    assert main(["bench", "train", "--preset", "tiny", "--batch", "2", "--image-px", "112", "--steps", "1",
                 "--warmup", "0", "--encode-batch", "2", "--attn", "sdpa", "--out", str(out)]) == 0
    settings = json.loads(out.read_text())["settings"]
    assert settings["preset"] == "tiny" and settings["attn"] == "sdpa"
