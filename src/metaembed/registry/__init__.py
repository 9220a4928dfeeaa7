"""The MLflow model registry around MetaEmbed: packaging, registration, the promotion gate, loading.

- `register.register`: log the trained model as a pyfunc "from code" and register it (once per
  distinct model); the current model gets the `challenger` alias.
- `gate.promote`: move `champion` only when quality and cost at the served budget allow it.
- `load.load_model` (also `metaembed.load`): a ready MetaEmbed from `models:/<name>@champion`.

Modules import mlflow; import them directly (this package imports nothing on purpose:
`pyfunc_model` registers itself with mlflow when imported).
"""
