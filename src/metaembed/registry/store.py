"""The MLflow model registry the project uses, and one error type for when it fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from metaembed.tracking import TrackingParams, configure, resolve_tracking_uri
from metaembed.tracking.redact import redact_text, redact_uri


STORE_LIBRARIES = {"sqlalchemy", "requests", "urllib3"}


class RegistryError(RuntimeError):
    """The registry could not be read or written; the message says what was (not) changed."""


def registry_client(tracking: TrackingParams, root: str | Path = ".") -> MlflowClient:
    """A client on the project's store (the registry lives in the same store as the runs)."""
    uri = resolve_tracking_uri(tracking, root)
    with reaching(uri, "opening the tracking store"):
        configure(tracking, root)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextmanager
def reaching(uri: str, action: str, consequence: str = "") -> Iterator[None]:
    """Turn any failure of the store (down, locked, refused) into a RegistryError naming it."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as error:
        # OSError covers refused connections and time-outs; sqlalchemy/requests errors are the
        # ones mlflow lets through. Anything else is a bug here and keeps its own traceback.
        library = type(error).__module__.split(".")[0]
        if not isinstance(error, (MlflowException, OSError)) and library not in STORE_LIBRARIES:
            raise
        tail = f"; {consequence}" if consequence else ""
        raise RegistryError(f"{action} failed against the registry at {redact_uri(uri)}: "
                            f"{redact_text(_first_line(error), uri)}{tail}") from error


def is_missing(error: MlflowException) -> bool:
    return error.error_code == "RESOURCE_DOES_NOT_EXIST"


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]
