"""Plot MMEB P@1 and ViDoRe nDCG@5 against the budget for A/B arms, from evaluate's report.json files.

    python scripts/plot_ab.py OUT.png LABEL=path/to/report.json [LABEL=...]
(`artifacts/evaluate/report.json` of `make run`, or `<baselines out>/<variant>/seed<k>/evaluate/report.json`.)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out, arms = sys.argv[1], [arg.rsplit("=", 1) for arg in sys.argv[2:]]
figure, axes = plt.subplots(1, 2, figsize=(10, 4))
for label, path in arms:
    summary = json.load(open(path))["summary"]
    budgets = list(summary)
    for axis, metric in zip(axes, ("mmeb_p_at_1", "vidore_ndcg_at_5")):
        axis.plot(budgets, [100 * summary[b][metric] for b in budgets], marker="o", label=label)
for axis, title in zip(axes, ("MMEB P@1 (%), chance 1", "ViDoRe nDCG@5 (%), chance 2.9")):
    axis.set_title(title)
    axis.set_xlabel("budget (r_q x r_c)")
    axis.grid(alpha=0.3)
axes[0].legend()
figure.tight_layout()
figure.savefig(out, dpi=110)
