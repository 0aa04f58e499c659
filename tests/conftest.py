"""Shared test settings: hypothesis profiles (`ci` by default, `deep` on demand)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from novita_flux import _retry
from novita_flux.testing import ReferenceServer
from tests.fuzz.summary import pytest_terminal_summary  # noqa: F401  (the fuzz inputs' summary)
from tests.support import Sleeps

pytest_plugins = ["pytester", "tests.docs.summary"]  # our own plugin tested; the docs count

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile(
    "deep",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def api(novita_server: ReferenceServer, monkeypatch: pytest.MonkeyPatch) -> ReferenceServer:
    """The CLI pointed at the reference server through the environment, as a user would. The
    server is our own pytest plugin's `novita_server`: shared, reset for every test."""
    monkeypatch.setenv("NOVITA_API_KEY", novita_server.api_key)
    monkeypatch.setenv("NOVITA_BASE_URL", novita_server.url)
    return novita_server


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """No real waiting in retry tests: every backoff is recorded instead."""
    recorder = Sleeps()
    monkeypatch.setattr(_retry, "sleep", recorder)
    monkeypatch.setattr(_retry, "async_sleep", recorder.async_call)
    return recorder
