from __future__ import annotations

import pytest

from metaembed.tracking.redact import redact_text, redact_uri


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://alice:s3cret@mlflow.internal:5000", "http://alice:***@mlflow.internal:5000"),
        ("postgresql://bob:hunter2@db/mlflow?sslmode=require", "postgresql://bob:***@db/mlflow?sslmode=require"),
        ("https://mlflow.internal/?token=abc123&x=1", "https://mlflow.internal/?token=***&x=1"),
        ("https://:tok@host", "https://:***@host"),
        ("sqlite:////data/mlflow.db", "sqlite:////data/mlflow.db"),
        ("databricks", "databricks"),
    ],
)
def test_redact_uri_masks_passwords_and_secret_query_values(uri, shown):
    assert redact_uri(uri) == shown


def test_redact_text_masks_the_uris_secrets_wherever_they_appear():
    uri = "http://alice:s3cret@host:5000?api_key=k3y"
    message = "API request to http://alice:s3cret@host:5000/api/2.0/x?api_key=k3y failed (s3cret)"
    cleaned = redact_text(message, uri)
    assert "s3cret" not in cleaned and "k3y" not in cleaned and "alice:***@host:5000" in cleaned


def test_a_percent_encoded_password_is_masked_in_both_spellings():
    uri = "http://alice:p%40ss@host"
    assert redact_text("p%40ss and p@ss", uri) == "*** and ***"
