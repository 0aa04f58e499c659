"""Schemathesis, with every default check, in positive and negative modes, finds nothing wrong
with the reference server: in-process over ASGI, over real HTTP, and from its command line. It
parametrizes one test per operation of the spec, every operation included."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from novita_flux import _spec
from novita_flux.testing import PROFILE_NAMES, ReferenceServer, create_app

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "flux-1-schnell.yaml"
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}

# What every run must have seen, or it did not exercise what it claims to: valid requests
# accepted, a missing key refused and another method turned away; and where the operation takes
# a body, invalid ones rejected.
EXPECTED = {("positive", 200), ("negative", 401), ("negative", 405)}
WITH_A_BODY = {("negative", 400)}


def expected(method: str, path: str) -> set[tuple[str, int]]:
    (operation,) = [
        op for op in _spec.operations().values() if (op.method, op.path) == (method, path)
    ]
    return EXPECTED | (WITH_A_BODY if "requestBody" in operation.body else set())


class Seen(Counter[tuple[str, int]]):
    """(mode, status) of every response of one run, and the operation it was of."""

    operation: tuple[str, str] | None = None


def load_schema() -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_path(SPEC)
    schema.config.update(headers=AUTH)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    return schema


# One schema per profile: schemathesis binds an app (or a URL) to the schema it parametrizes.
in_process = {name: load_schema() for name in PROFILE_NAMES}
for name, schema in in_process.items():
    schema.app = create_app(api_key=KEY, profile=name)
over_http = load_schema()


@pytest.fixture
def seen(request: pytest.FixtureRequest) -> Iterator[Seen]:
    """(mode, status) of every response of one run, checked once the run is over."""
    failed_before = request.session.testsfailed
    counts = Seen()
    yield counts
    if request.session.testsfailed > failed_before:
        return  # the run failed, and said why; what it did not get to see is no news
    assert counts.operation is not None, "the run called nothing"
    missing = expected(*counts.operation) - set(counts)
    assert not missing, f"the run never saw {sorted(missing)}; it saw {dict(counts)}"


@pytest.fixture(scope="module", params=PROFILE_NAMES)
def server(request: pytest.FixtureRequest) -> Iterator[ReferenceServer]:
    with ReferenceServer(api_key=KEY, profile=request.param) as running:
        yield running


def record(seen: Seen, case: schemathesis.Case, status: int) -> None:
    mode = case.meta.generation.mode.value if case.meta is not None else "explicit"
    seen[(mode, status)] += 1
    seen.operation = (case.method.upper(), case.path)


# `seen` is meant to last the whole run: one tally across all the examples of a test.
TALLY_HEALTH = [*settings.default.suppress_health_check, HealthCheck.function_scoped_fixture]
ONE_TALLY_PER_RUN = settings(suppress_health_check=TALLY_HEALTH)


@in_process["documented"].parametrize()
@ONE_TALLY_PER_RUN
def test_in_process_documented_app_passes_every_default_check(
    case: schemathesis.Case, seen: Seen
) -> None:
    record(seen, case, case.call_and_validate().status_code)


@in_process["observed"].parametrize()
@ONE_TALLY_PER_RUN
def test_in_process_observed_app_passes_every_default_check(
    case: schemathesis.Case, seen: Seen
) -> None:
    record(seen, case, case.call_and_validate().status_code)


@over_http.parametrize()
@ONE_TALLY_PER_RUN
def test_server_over_http_passes_every_default_check(
    case: schemathesis.Case, server: ReferenceServer, seen: Seen
) -> None:
    record(seen, case, case.call_and_validate(base_url=server.url).status_code)


def test_the_documented_command_line_passes(server: ReferenceServer, tmp_path: Path) -> None:
    # The command the README gives users, pointed at this server's port.
    command = [
        *("schemathesis", "run", str(SPEC), "--url", server.url),
        *("--header", f"Authorization: Bearer {KEY}", "--checks", "all", "--mode", "all"),
    ]
    budget = ["--max-examples", str(settings.default.max_examples), "--no-color"]
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", *command[1:], *budget],
        cwd=tmp_path,  # its example database stays out of the checkout
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
