"""Registry store errors: named, and never with the store's password."""

import pytest
from mlflow.exceptions import MlflowException

from metaembed.registry.store import RegistryError, reaching

URI = "http://alice:s3cret@127.0.0.1:5999"


def test_a_failure_names_the_store_with_its_password_masked():
    with pytest.raises(RegistryError) as caught:
        with reaching(URI, "moving champion to v2", "champion still points at v1"):
            raise MlflowException(f"API request to {URI}/api/2.0/mlflow/registered-models/get failed")
    message = str(caught.value)
    assert "s3cret" not in message
    assert "127.0.0.1:5999" in message and "moving champion to v2" in message and "still points at v1" in message


def test_a_bug_outside_the_store_keeps_its_own_type():
    with pytest.raises(KeyError):
        with reaching(URI, "reading"):
            raise KeyError("not a store failure")
