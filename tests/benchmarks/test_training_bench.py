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
                 "--warmup", "0", "--encode-batch", "2", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["preset"] == "tiny"
