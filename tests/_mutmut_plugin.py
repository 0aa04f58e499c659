"""pytest plugin used only under mutmut: `[tool.mutmut] pytest_add_cli_args = ["-p", ...]`.

mutmut runs the suite inside mutants/, where the mutated package is mutants/src/novita_flux
(`src` being the symlink to overlay/ in the checkout). This plugin makes every run start from
the same state, whichever process it runs in:

* functools caches in novita_flux (and the compiled-schema memo) are emptied before each
  test, so a result memoised under the original code (stats run, fork-server warm-up) or by
  an earlier test cannot hide a mutant of a function called beneath the cache, and every test
  that reaches that function is recorded for it by the stats run;
* subprocesses (`python -m novita_flux`, `python -c ...`) import the mutated package too,
  and run the mutant under test; during the stats run they run the original code instead
  (mutmut's stats hook in a subprocess whose cwd has no pyproject.toml raises
  FileNotFoundError, and what a subprocess calls is never recorded anyway);
* Hypothesis keeps no example database and draws the same examples in every run, so a
  mutant's verdict does not depend on what earlier mutants left behind or on luck.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

MUTATED_SOURCE = Path(__file__).resolve().parents[1] / "src"  # mutants/src

if MUTATED_SOURCE.is_dir():
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(MUTATED_SOURCE), *filter(None, [os.environ.get("PYTHONPATH")])]
    )


# Caches whose values come from code that is not mutated: the parsed spec (re-reading the YAML
# before every test would cost more than the tests), the shared SSL context, rendered images.
PURE_DATA_MODULES = {"novita_flux._spec", "novita_flux._config", "novita_flux.testing._render"}


def clear_novita_flux_caches() -> None:
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "novita_flux" or name.startswith("novita_flux.")):
            continue
        if name in PURE_DATA_MODULES:
            continue
        for value in list(vars(module).values()):
            if getattr(value, "__module__", None) == name and callable(
                getattr(value, "cache_clear", None)
            ):
                value.cache_clear()
    # Compiled checkers memoised by schema: one compiled before the mutant was active (while
    # the fork server collected the tests) would otherwise stand in for the mutated compiler.
    schema = sys.modules.get("novita_flux._schema")
    if schema is not None:
        schema._CHECKERS.clear()


# They run `novita-flux batch` in child processes and kill, terminate or interrupt them at
# moments in real time: what they test is the command's process handling (_cli/_batch, _lock:
# not mutated), and each child pays ~6 s to import the trampolined package, for every mutant
# of every function their in-process reference server calls. The ledger and the engine they
# drive are pinned in-process by tests/batch/test_ledger_examples.py and the batch tests.
CHILD_PROCESS_TESTS = {
    "tests/batch/test_ledger.py::" + name
    for name in (
        "test_sigkill_at_random_moments_never_bills_twice_and_saves_every_paid_image",
        "test_sigterm_stops_new_sends_lets_the_wire_finish_and_leaves_nothing_in_flight",
        "test_a_request_waiting_for_its_pacing_slot_is_never_sent_after_a_signal",
        "test_a_second_ctrl_c_exits_at_once_and_the_ledger_stays_consistent",
        "test_a_second_batch_on_the_same_directory_refuses_and_the_first_finishes",
        "test_a_lock_left_by_a_killed_run_is_taken_over",
    )
}


# Whole suites that reach the mutated code only through slower layers, each pinned by faster
# tests that must kill its mutants on their own: the client's flows over a real socket against
# the reference server (the same flows run over respx in test_client.py and the examples),
# writing cassettes (verify/_record is not mutated), and the response properties (the
# explicit examples in tests/client/test_response_examples.py kill them, seed-free).
SLOW_SUITES = (
    "tests/client/test_client_over_http.py::",
    "tests/verify/test_record.py::",
    "tests/client/test_response_properties.py::",
)

# Durations of the stats run, written by mutmut beside the tests.
STATS = Path(__file__).resolve().parents[1] / "mutmut-stats.json"


def left_out(item: pytest.Item) -> bool:
    return item.nodeid in CHILD_PROCESS_TESTS or item.nodeid.startswith(SLOW_SUITES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [item for item in items if left_out(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not left_out(item)]
    # Fastest first: mutmut stops at the first failure (-x), so a mutant an example kills in
    # milliseconds is not first made to wait for the slow tests that reach it too.
    if STATS.is_file():
        durations = json.loads(STATS.read_text()).get("duration_by_test", {})
        items.sort(key=lambda item: durations.get(item.nodeid, 0.0))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        # This process keeps "stats" (mutmut also holds it in a process-local variable, read
        # when the variable is absent); subprocesses started from here must not inherit it.
        # Per test rather than once: a fixture that restores os.environ could bring it back.
        del os.environ["MUTANT_UNDER_TEST"]
    clear_novita_flux_caches()


def pytest_configure(config: pytest.Config) -> None:
    # After tests/conftest.py registered its profiles, before any test module is imported
    # (module-level `settings(...)` objects copy the profile that is loaded at that moment).
    from hypothesis import settings

    # Fewer examples than `ci`: each of ~4,000 mutants pays for every property test that
    # reaches it. The explicit examples are what must kill a mutant; a property that is the
    # only test to catch one at 60 examples but not at 10 is a missing example.
    base = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    settings.register_profile(
        "mutmut",
        parent=settings.get_profile(base),
        max_examples=int(os.environ.get("MUTMUT_MAX_EXAMPLES", "10")),
        database=None,
        derandomize=True,
    )
    settings.load_profile("mutmut")
