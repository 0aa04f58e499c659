"""The pytest plugin, as a user's own test suite sees it (pytester runs a separate session)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USER_TESTS = """
import pytest
from novita_flux import RateLimitError


def test_it_generates(flux_client, novita_server):
    generation = flux_client.generate("a fox", width=64, height=64)
    assert generation.images[0].ttl == 3600
    assert novita_server.faults.api_requests == 1
    assert flux_client.download(generation.images[0]).startswith(b"\\x89PNG")


def test_faults_and_counters_start_clean(flux_client, novita_server):
    assert novita_server.faults.api_requests == 0  # the other test's call is forgotten
    novita_server.faults.fail_next(1, reason="BILLING_BALANCE_NOT_ENOUGH")
    with pytest.raises(Exception, match="BILLING_BALANCE_NOT_ENOUGH"):
        flux_client.generate("x", width=64, height=64)


@pytest.mark.novita(profile="observed", images_per_minute=1, latency=0.05, image_url_ttl=0)
def test_the_marker_configures_the_server(flux_client, novita_server):
    generation = flux_client.generate("x", width=64, height=64)
    assert generation.raw["images"][0]["image_url_ttl"] == "0"  # observed, TTL 0
    assert generation.images[0].expires_at is None
    with pytest.raises(RateLimitError):
        flux_client.with_options(max_retries=0).generate("x", width=64, height=64)
    assert novita_server.faults.latency == 0.05


def test_the_marker_is_undone_after_its_test(novita_server):
    assert novita_server.faults.images_per_minute is None
    assert novita_server.faults.latency == 0.0


@pytest.mark.novita(balance="0.001")
def test_the_marker_sets_the_account_s_balance(flux_client, novita_server):
    from decimal import Decimal

    from novita_flux import BadRequestError

    assert flux_client.balance().available_balance == Decimal("0.0010")
    flux_client.generate("x", width=512, height=512)  # $0.00075
    with pytest.raises(BadRequestError, match="BILLING_BALANCE_NOT_ENOUGH"):
        flux_client.generate("x", width=512, height=512)
    assert novita_server.account.balance == Decimal("0.00025")


def test_the_account_is_unlimited_again_after_it(novita_server):
    assert novita_server.account.balance is None
    assert novita_server.account.spent == 0


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_the_async_client(async_flux_client, novita_server):
    generation = await async_flux_client.generate("x", width=64, height=64, image_num=2)
    assert len(generation.images) == 2
    assert novita_server.faults.image_requests_with_authorization == 0
"""


def test_a_users_tests_pass_with_only_the_fixtures_and_the_marker(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7)


def test_a_misspelt_marker_option_fails_the_test_saying_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.novita(images_per_minit=10)
        def test_typo(novita_server):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)  # at set-up: the test itself never ran
    result.stdout.fnmatch_lines(["*unknown option(s) images_per_minit; known: profile*"])


BLOCK_THE_EXTRA = '''
import importlib.abc
import sys


class NotInstalled(importlib.abc.MetaPathFinder):
    """As if `pip install novita-flux` had been run without the testing extra."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("starlette", "uvicorn", "PIL"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
'''


def test_without_the_testing_extra_only_the_fixtures_fail_and_say_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(BLOCK_THE_EXTRA)
    pytester.makepyfile(
        """
        def test_my_own_code():
            assert 1 + 1 == 2

        def test_with_the_server(flux_client):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.re_match_lines(
        [r".*need the testing extra: pip install 'novita-flux\[testing\]'.*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_the_plugin_imports_neither_the_client_nor_the_server() -> None:
    probe = (
        "import sys, pytest_novita_flux\n"
        "heavy = {'novita_flux', 'httpx', 'starlette', 'uvicorn', 'PIL'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_the_readme_example_passes_as_it_is_written(pytester: pytest.Pytester) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    after = readme.index("registers a **pytest plugin**")
    start = readme.index("```python\n", after) + len("```python\n")
    example = readme[start : readme.index("```", start)]
    assert "def test_" in example
    pytester.makepyfile(test_readme=example)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=example.count("\ndef test_"))
