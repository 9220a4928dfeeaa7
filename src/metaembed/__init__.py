"""MetaEmbed multimodal multi-vector retrieval: model core, training and MLOps around it."""

__version__ = "0.1.0"


def load(uri, device: str = "cpu", params_path: str = "params.yaml", trust_remote_code: bool = False):
    """A ready (eval-mode) MetaEmbed from `models:/<name>@champion`, `models:/<name>/<version>`,
    `runs:/<run id>/metaembed` or a saved folder.

    Registry URIs are read from the store in params.yaml `tracking:` (or MLFLOW_TRACKING_URI); the
    version's files are downloaded and read as weights and config, never run as code. A store that
    does not exist is an error naming it, not a new empty one. `trust_remote_code` (default off)
    lets the backbone's own Python code run; the model's config cannot turn it on.
    Imports torch and mlflow only when called.
    """
    from metaembed.registry.load import load_model

    return load_model(uri, device=device, params_path=params_path, trust_remote_code=trust_remote_code)
