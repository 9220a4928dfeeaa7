"""Every name the registry writes and reads: aliases, model-version tags, the logged model's keys.

One place, so that registration, the promotion gate, the loader and the pyfunc agree; this module
imports nothing, so any of them (and the pyfunc MLflow runs on load) can import it.
"""

# Aliases of the registered model.
CHAMPION = "champion"  # the version the product serves (`models:/<name>@champion`)
CHALLENGER = "challenger"  # the pipeline's newest model, waiting for the gate

# The logged model: its name inside the training run, and the pyfunc artifact that holds the
# saved MetaEmbed folder (`context.artifacts[ARTIFACT_KEY]`, `artifacts/<ARTIFACT_KEY>/` on disk).
LOGGED_MODEL_NAME = "metaembed"
ARTIFACT_KEY = "metaembed"

# Tags registration writes on a version.
SHA_TAG = "metaembed.model_sha256"  # sha256 of the saved folder: the same model is one version
TRAIN_RUN_TAG = "metaembed.train_run_id"
SWEEP_RUN_TAG = "metaembed.sweep_run_id"
BUDGETS_TAG = "metaembed.budgets"  # the sweep's budgets.json, compact: what the gate compares
# The index stage's latency.json, compact: measured search time and index bytes per budget (absent
# when the index stage did not run; the gate then falls back to the sweep's synthetic latency).
INDEX_LATENCY_TAG = "metaembed.index_latency"
PROVENANCE_TAGS = ("git.commit", "git.dirty", "params.hash", "params.path", "data.hash", "data.path",
                   "data.dvc_md5")  # copied from the training run

# Tags the gate writes on the version it judged.
GATE_DECISION_TAG = "gate.decision"  # "promoted" or "rejected"
GATE_REASON_TAG = "gate.reason"
GATE_CHAMPION_BEFORE_TAG = "gate.champion_before"  # version number, or "none"
GATE_BUDGET_TAG = "gate.budget"  # the served budget (r_q x r_c) the gate chose, or "none"
GATE_LATENCY_TAG = "gate.latency_source"  # where the latencies it compared came from, in words
GATE_METRIC_TAG = "gate.metric"
GATE_CHECKS_TAG = "gate.checks"  # JSON list of every check

# Tags `metaembed index build`, and registration for the index stage's index, write on the version
# whose model built an index: one per index folder, the key's suffix a digest of the folder's
# absolute path (so indexes never overwrite each other's tag), the value JSON {"path",
# "manifest_sha256", "candidates", "dtype", "built_at"}.
INDEX_TAG_PREFIX = "metaembed.index."
