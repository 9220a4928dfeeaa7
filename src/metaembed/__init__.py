"""MetaEmbed multimodal multi-vector retrieval: model core, training and MLOps around it."""

__version__ = "0.1.0"


def load(uri, device: str = "cpu", params_path: str = "params.yaml"):
    """A ready (eval-mode) MetaEmbed from `models:/<name>@champion`, `models:/<name>/<version>`,
    `runs:/<run id>/metaembed` or a saved folder.

    Registry URIs are read from the store in params.yaml `tracking:` (or MLFLOW_TRACKING_URI).
    Imports torch and mlflow only when called.
    """
    from metaembed.registry.load import load_model

    return load_model(uri, device=device, params_path=params_path)
