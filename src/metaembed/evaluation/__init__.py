"""Evaluation at every retrieval budget, the budget sweep, and the baselines comparison.

    suite.py      the sets to score (prepared data or real-format folders)
    encode.py     encode each distinct input once at full size; the safetensors embedding cache
    mmeb.py       Precision@1 (fair ties) and twin accuracy per subset, MMEB's means
    vidore.py     nDCG@5, recall@k, MRR@10 by pytrec_eval
    quality.py    plan -> encode -> score every budget (`evaluate_model`, `score_stores`)
    stage.py      the `evaluate` stage: files, plots, MLflow
    sweep.py      the `sweep` stage: costs, latency.py, throughput.py, pareto.py
    baselines.py  variants x seeds: train, evaluate, aggregate, check the paper's directions
See docs/evaluation.md.
"""
