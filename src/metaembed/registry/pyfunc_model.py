"""The registered model's pyfunc, logged as MLflow "models from code".

MLflow copies this file into the model folder and runs it when the model is loaded: no torch
module is pickled. The weights travel as the `metaembed` artifact, the folder that
`MetaEmbed.save_pretrained` writes (safetensors, config JSON, processor), and are read back with
`MetaEmbed.from_pretrained`. Loading needs the `metaembed` package installed.

This file is for MLflow serving (`mlflow models serve`, `mlflow.pyfunc.load_model`), which runs
whatever code is stored with a version: load only versions from a store you trust that way.
`metaembed.load` does not use it; it reads the stored weights and config as files.

Input: a DataFrame with a `text` and/or an `image` column (an image is a file path or a
`data:image/...;base64,` URI; a row may leave either empty). Inference params: `side`
("query" or "candidate"), `budget` (vectors kept for that side; 0 keeps all) and `batch_size`.
Output: float32 embeddings [rows, vectors, dim], L2-normalised; padding vectors (token pooling
only) are zeros.
"""

import base64
import math

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from metaembed.registry.names import ARTIFACT_KEY

DATA_URI = "data:"


class MetaEmbedPyfunc(PythonModel):
    def load_context(self, context) -> None:
        from metaembed.model import MetaEmbed

        self.model = MetaEmbed.from_pretrained(context.artifacts[ARTIFACT_KEY])

    # A DataFrame hint: mlflow keeps the explicit signature and does not warn about missing hints.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        import torch

        params = params or {}
        side = params.get("side") or "query"
        budget = int(params.get("budget") or 0) or None
        batch_size = max(1, int(params.get("batch_size") or 32))
        texts, images = _columns(model_input)
        if not texts:
            raise ValueError("model input has no rows")
        chunks = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                stop = start + batch_size
                vectors, mask = self.model.encode(side, texts[start:stop], images[start:stop], budget)
                chunks.append(vectors * mask.unsqueeze(-1))
        return _stack(chunks).numpy()


def _columns(model_input) -> tuple[list, list]:
    frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
    if not {"text", "image"} & set(frame.columns):
        raise ValueError(f"model input needs a `text` and/or an `image` column, got {list(frame.columns)}")
    rows = len(frame)
    texts = [_present(value) for value in frame["text"]] if "text" in frame else [None] * rows
    images = [_image(_present(value), index) for index, value in enumerate(frame["image"])] if "image" in frame else [None] * rows
    return texts, images


def _present(value):
    """None for the empty cells pandas may hold as None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _image(value, index: int):
    if isinstance(value, str) and value.startswith(DATA_URI):
        header, _, payload = value.partition(",")
        if not header.endswith(";base64"):
            raise ValueError(f"image {index}: only base64 data URIs are accepted (data:image/png;base64,...)")
        return base64.b64decode(payload)
    return value  # a path, raw bytes or None: metaembed.batching decodes them with clear errors


def _stack(chunks):
    """Concatenate batches; token pooling gives each batch its own vector count, so pad with zeros."""
    import torch

    width = max(chunk.shape[1] for chunk in chunks)
    padded = [torch.nn.functional.pad(chunk, (0, 0, 0, width - chunk.shape[1])) for chunk in chunks]
    return torch.cat(padded).float()


mlflow.models.set_model(MetaEmbedPyfunc())
