"""PostgreSQL alone, for the tests of its start and stop (the whole stack is tests/conftest.py's `services`)."""

from __future__ import annotations

import pytest

from metaembed.services import postgres


@pytest.fixture
def postgres_only(services_root, services_in, request):
    """PostgreSQL settings in a folder of their own (cheap: no MLflow or Prefect start-up), stopped after."""
    alone = services_in(services_root / request.node.name)
    yield alone
    postgres.stop(alone)
