"""`metaembed.load(uri)`: a ready MetaEmbed from the registry, a run, or a saved folder.

A registered version is read as files: its artifacts are downloaded and the safetensors weights
and JSON config go through `MetaEmbed.from_pretrained`. `mlflow.pyfunc.load_model` would instead
execute the Python file stored with the version (MLflow "models from code"), so whoever can
write to the store could run code on every machine that loads the model. The pyfunc stays for
MLflow serving only.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from metaembed.model import CONFIG_FILE, MetaEmbed
from metaembed.registry.names import ARTIFACT_KEY, SHA_TAG
from metaembed.registry.store import RegistryError
from metaembed.tracking import TrackingParams, resolve_tracking_uri
from metaembed.tracking.redact import redact_text, redact_uri
from metaembed.tracking.store import TRACKING_URI_ENV, tracking_uri_override

MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


def load_model(
    uri: str | Path, device: str = "cpu", params_path: str | Path = "params.yaml", trust_remote_code: bool = False
) -> MetaEmbed:
    """`models:/<name>@champion`, `models:/<name>/<version>`, `runs:/...`, or a local folder.

    MLflow URIs are read from the project's store (params.yaml `tracking:`, relative to the
    params file's folder) unless MLFLOW_TRACKING_URI is set. `trust_remote_code` is passed to
    `MetaEmbed.from_pretrained`; the model's own config cannot turn it on.
    """
    text = str(uri)
    if not text.startswith(MLFLOW_SCHEMES):
        return _from_folder(Path(text), device, trust_remote_code)
    store, source = _use_project_store(Path(params_path))
    _require_local_store(store, source, text)
    with tempfile.TemporaryDirectory(prefix="metaembed-load-") as scratch:
        folder = _download(text, store, Path(scratch))
        return _from_folder(folder, device, trust_remote_code)


@dataclass(frozen=True)
class PinnedModel:
    """A loaded model with what pins it: the sha256 of its saved folder and, from the registry,
    the version number an alias resolved to (an alias moves; a version's files do not)."""

    model: MetaEmbed
    sha256: str  # digest.folder_sha256 of the saved MetaEmbed folder: the version's SHA_TAG
    uri: str  # as asked for: a models:/ or runs:/ URI, or the folder's absolute path
    name: str | None = None  # the registered model, for models:/ URIs
    version: str | None = None
    # The store it came from, for MLflow URIs. It may carry credentials: show it through redact_uri.
    store: str | None = field(default=None, repr=False)

    @property
    def pinned_uri(self) -> str:
        """The URI that loads these exact files again: models:/<name>/<version> for a version."""
        return f"models:/{self.name}/{self.version}" if self.version else self.uri


def load_pinned(
    uri: str | Path, device: str = "cpu", params_path: str | Path = "params.yaml", trust_remote_code: bool = False
) -> PinnedModel:
    """As `load_model`, also returning the folder's sha256 and the registry version. A registry
    alias is resolved first and that version downloaded; its files must hash to the version's
    `metaembed.model_sha256` tag (when it has one)."""
    from metaembed.registry.digest import folder_sha256

    text = str(uri)
    if not text.startswith(MLFLOW_SCHEMES):
        folder = _weights_folder(Path(text))
        model = MetaEmbed.from_pretrained(folder, device=device, trust_remote_code=trust_remote_code)
        return PinnedModel(model, folder_sha256(folder), str(Path(text).resolve()))
    store, source = _use_project_store(Path(params_path))
    _require_local_store(store, source, text)
    name, version, tag = _resolve_version(text, store)
    with tempfile.TemporaryDirectory(prefix="metaembed-load-") as scratch:
        target = f"models:/{name}/{version}" if version else text
        folder = _weights_folder(_download(target, store, Path(scratch)))
        digest = folder_sha256(folder)
        if tag is not None and tag != digest:
            raise RegistryError(f"{target}: the downloaded files hash to sha256 {digest[:12]}..., but the version's "
                                f"{SHA_TAG} tag says {tag[:12]}...: the stored artifacts were changed after "
                                "registration; register the model again")
        model = MetaEmbed.from_pretrained(folder, device=device, trust_remote_code=trust_remote_code)
    return PinnedModel(model, digest, text, name, version, store)


def _resolve_version(uri: str, store: str) -> tuple[str | None, str | None, str | None]:
    """(name, version, sha256 tag) of models:/<name>@<alias> or models:/<name>/<version>; Nones otherwise."""
    from mlflow.tracking import MlflowClient

    from metaembed.registry.store import reaching

    rest = uri.removeprefix("models:/") if uri.startswith("models:/") else None
    if rest is None or ("@" not in rest and not rest.rpartition("/")[2].isdigit()):
        return None, None, None
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    with reaching(store, f"resolving {uri}"):
        if "@" in rest:
            name, _, alias = rest.partition("@")
            found = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = rest.rpartition("/")
            found = client.get_model_version(name, number)
    return name, str(found.version), found.tags.get(SHA_TAG)


def _weights_folder(folder: Path) -> Path:
    """The saved MetaEmbed folder: `folder` itself, or the `metaembed` artifact of a pyfunc folder
    (e.g. from `mlflow artifacts download`)."""
    for candidate in (folder, _pyfunc_weights(folder)):
        if candidate is not None and (candidate / CONFIG_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"{folder}: neither a MetaEmbed.save_pretrained folder nor a registered "
                            f"pyfunc folder (no {CONFIG_FILE}, no MLmodel naming a `{ARTIFACT_KEY}` artifact "
                            f"that holds one); pass models:/<name>@champion to load from the registry")


def _from_folder(folder: Path, device: str, trust_remote_code: bool = False) -> MetaEmbed:
    return MetaEmbed.from_pretrained(_weights_folder(folder), device=device, trust_remote_code=trust_remote_code)


def _pyfunc_weights(folder: Path) -> Path | None:
    """The `metaembed` artifact's folder, as the pyfunc's MLmodel file records it (read as YAML only)."""
    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        return None
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors") or {}
    entry = ((flavors.get("python_function") or {}).get("artifacts") or {}).get(ARTIFACT_KEY) or {}
    if not entry.get("path"):
        return None
    weights = (folder / entry["path"]).resolve()
    if not weights.is_relative_to(folder.resolve()):
        raise FileNotFoundError(f"{mlmodel}: artifact {ARTIFACT_KEY!r} points outside the model folder "
                                f"({entry['path']}); refusing to load from there")
    return weights


def _use_project_store(params_path: Path) -> tuple[str, str]:
    """Point mlflow at the store to read from; returns its URI and where that URI came from."""
    import mlflow

    from metaembed.config import load_section

    if tracking_uri_override():
        return mlflow.get_tracking_uri(), TRACKING_URI_ENV
    if not params_path.is_file():
        # mlflow's own default; told apart so that the error can say params.yaml was not found.
        return mlflow.get_tracking_uri(), f"mlflow's default, as {params_path} does not exist"
    tracking = load_section("tracking", TrackingParams, params_path)
    uri = resolve_tracking_uri(tracking, params_path.parent)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri, f"{params_path} tracking.tracking_uri"


def _require_local_store(uri: str, source: str, model_uri: str) -> None:
    """Refuse a local store that does not exist: mlflow would create an empty one to look in."""
    path = _local_store_path(uri)
    if path is None or path.exists():
        return
    raise RegistryError(
        f"cannot load {model_uri}: there is no MLflow store at {redact_uri(uri)} (from {source}; "
        f"{path.resolve()} does not exist), and none was created. Run from the project folder, pass "
        f"params_path=<project>/params.yaml, or set {TRACKING_URI_ENV} to the store that holds the model"
    )


def _local_store_path(uri: str) -> Path | None:
    """The file or folder of a sqlite or file store; None for a server or an in-memory database."""
    if uri.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        database = make_url(uri).database
        return Path(database) if database and database != ":memory:" else None
    if uri.startswith("file:"):
        return Path(unquote(urlsplit(uri).path))
    return Path(uri) if "://" not in uri else None


def _download(model_uri: str, store: str, scratch: Path) -> Path:
    """The version's (or run's) artifacts as plain files; nothing stored with them is executed."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(scratch)))
    except (MlflowException, OSError) as error:
        first = (str(error).strip() or type(error).__name__).splitlines()[0][:500]
        raise RegistryError(
            f"cannot load {model_uri} from the store at {redact_uri(store)}: {redact_text(first, store)}"
        ) from None
