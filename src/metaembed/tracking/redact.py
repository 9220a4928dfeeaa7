"""Store URIs as they may be shown: passwords and secret query values masked.

A tracking URI can carry credentials (`http://user:password@host`, `postgresql://...`,
`?token=...`); every message that names a store goes through `redact_uri` first.
"""

from __future__ import annotations

import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
# Query parameters whose values are credentials.
SECRET_KEYS = re.compile(r"pass|token|secret|key|sig|credential|auth", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """`uri` with the password in its user info and the values of secret-looking query keys masked.

    Every occurrence of a secret is masked, so a short password that also spells part of the host
    hides that part too: shown too little rather than too much."""
    return _mask(uri, _secrets(uri))


def redact_text(text: str, uri: str) -> str:
    """`text` (e.g. an error message from the store's client) with `uri`'s secrets masked wherever
    they appear, also inside longer URLs the client built from it."""
    return _mask(text, _secrets(uri))


def _secrets(uri: str) -> list[str]:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return []
    # The password as written (percent-encoded) and decoded: a client may print either.
    found = [parts.password, unquote(parts.password)] if parts.password else []
    found += [value for key, value in parse_qsl(parts.query, keep_blank_values=False) if SECRET_KEYS.search(key)]
    # Longest first, so a secret that contains another is masked whole.
    return sorted(set(found), key=len, reverse=True)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


# --- free text whose URIs are not known in advance (tracebacks, stage output, markdown) ---------

# scheme://user:password@ — the password runs to the last "@" before the host (it may hold "@").
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):(?P<password>[^\s/'\"]+)@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?P<key>[A-Za-z_]+)=)(?P<value>[^&\s'\"#]+)")


def redact_credentials(text: str) -> str:
    """Every URI password and secret query value in `text` masked, whichever URIs it names."""
    text = _USERINFO.sub(rf"\g<head>:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: m["head"] + MASK if SECRET_KEYS.search(m["key"]) else m[0], text)


def _has_credentials(error: BaseException) -> bool:
    text = "".join(traceback.format_exception(error))
    return redact_credentials(text) != text


def _redacted_copy(error: Exception) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ErrorCode

    message = redact_credentials(str(error))
    extra = {"error_code": ErrorCode.Value(error.error_code)} if isinstance(error, MlflowException) else {}
    try:
        return type(error)(message, **extra)
    except Exception:  # a constructor with other arguments: the nearest type that takes a message
        if extra:
            return MlflowException(message, **extra)
        return RuntimeError(f"{type(error).__name__}: {message}")


@contextmanager
def redacted_errors() -> Iterator[None]:
    """Re-raise an exception whose text or chain holds a credential as a masked copy.

    mlflow repeats the URI it was given ("API request to http://user:pw@host/... failed"). The
    copy keeps the exception's type where its constructor takes one message (so `except` clauses
    and retry conditions still match) and drops the chain, which held the secret.
    """
    try:
        yield
    except Exception as error:
        if not _has_credentials(error):
            raise
        raise _redacted_copy(error) from None


def redacting_excepthook(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    """`sys.excepthook` for the CLI: the usual traceback, with credentials masked."""
    sys.stderr.write(redact_credentials("".join(traceback.format_exception(kind, error, trace))))
