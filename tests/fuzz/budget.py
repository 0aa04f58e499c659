"""How many inputs each fuzz suite takes: the hypothesis profile's count (60 under `ci`, 3000
under `deep`), or a share of it for the suites whose every input runs a whole command or call
with its files and downloads, so that `make test` stays quick and `make test-deep` goes far."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# The fixtures these suites share (the reference server, a working directory) are set up once
# per test, not per input: each input resets what it uses itself.
_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def fuzz(share: float = 1.0) -> settings:
    """Settings taking `share` of the profile's inputs (at least 20)."""
    examples = max(20, round(settings.default.max_examples * share))
    return settings(max_examples=examples, suppress_health_check=_CHECKS)
