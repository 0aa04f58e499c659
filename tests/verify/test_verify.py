"""`novita-flux verify` against the reference server: both profiles hold, the open questions get
their answers for that server, the budget is held before anything is sent, and every way of
not being able to check says so with exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from novita_flux import (
    APIStatusError,
    BudgetExceededError,
    FluxSchnell,
    RateLimitError,
    ResponseValidationError,
    ValidationError,
    _spec,
)
from novita_flux._cli import main
from novita_flux._cli._main import build_parser
from novita_flux._constants import MAX_RETRY_AFTER
from novita_flux.testing import ReferenceServer
from novita_flux.verify import DEFAULT_MAX_COST, Finding, Report, _judge, build_plan, run
from tests.support import Sleeps, printed

KEY = "sk-verify-0123456789abcdef-do-not-leak"


@pytest.fixture(scope="module")
def documented() -> Iterator[ReferenceServer]:
    with ReferenceServer(api_key=KEY) as server:
        yield server


@pytest.fixture(scope="module")
def observed() -> Iterator[ReferenceServer]:
    with ReferenceServer(api_key=KEY, profile="observed") as server:
        yield server


def verify(server: ReferenceServer, **options: object) -> Report:
    server.faults.reset()
    server.account.reset()
    options = {"images_per_minute": 0, **options}
    return run(api_key=KEY, base_url=server.url, **options)  # type: ignore[arg-type]


def answers(report: Report) -> dict[str, str]:
    return {
        f"{result.probe.id} / {finding.where}": finding.got for result, finding in report.answers()
    }


def test_the_documented_profile_conforms_and_the_open_questions_get_answers(
    documented: ReferenceServer,
) -> None:
    report = verify(documented)
    assert report.exit_status == 0, report.text()
    assert {result.verdict for result in report.results} == {"conforms", "answered"}
    assert report.tolerated() == []
    got = answers(report)
    names = "questions.response_image_type_names"
    assert got[f"{names} / response_image_type"].startswith("honoured: jpeg asked, JPEG")
    assert got[f"{names} / response_image_format"].startswith("refused: 400 INVALID_REQUEST_BODY")
    assert got["questions.seed_omitted / without seed"].startswith("refused: 400 INVALID_REQUEST")
    assert got["questions.same_seed_same_bytes / the same request twice"].startswith("the same")
    assert got["auth.no_header / no Authorization header"].startswith("401 FAILED_TO_AUTH")
    assert got["auth.empty_bearer / an empty bearer key (Authorization: Bearer)"].startswith(
        "400 MISSING_API_KEY"
    )
    assert got["auth.wrong_key / a key that is not a key"].startswith("403 INVALID_API_KEY")
    price = got["balance.price / the balance's drop"]
    assert price.startswith(
        "the balance dropped by exactly the plan's price: 15 unit(s) ($0.0015), the sum of "
        "estimate_cost over the 16 billed request(s)"
    ), price
    assert report.spent == report.plan.price == Decimal("0.0015")
    sent = [send.operation for probe in report.plan.probes for send in probe.sends]
    assert documented.faults.api_requests == sent.count(_spec.GENERATE)
    assert documented.account.reads == sent.count(_spec.BALANCE) == 2  # before and after
    assert documented.faults.image_requests_with_authorization == 0
    assert report.text().endswith(f"verdict: {report.verdict()}")
    assert report.verdict().startswith("the spec held")


def test_the_observed_profile_conforms_with_its_tolerated_variants_listed(
    observed: ReferenceServer,
) -> None:
    report = verify(observed)
    assert report.exit_status == 0, report.text()
    tolerated = {finding.where: finding for finding, _ in report.tolerated()}
    assert "'3600'" in tolerated["$.images[*].image_url_ttl"].got  # a string of digits
    assert "$.images[*].nsfw_detection_result" in tolerated  # fields the spec does not name
    assert "$.extra" in tolerated
    assert "$.task.status" in tolerated
    assert "application/octet-stream" in tolerated["image *: Content-Type"].got
    assert "tolerated variants" in report.text()
    assert not report.deviating


def test_the_rate_limit_probe_shows_the_429_as_it_comes(
    documented: ReferenceServer, observed: ReferenceServer
) -> None:
    seen = {}
    for server in (documented, observed):
        server.faults.reset()
        server.faults.images_per_minute = 10
        report = run(
            api_key=KEY,
            base_url=server.url,
            probe_rate_limit=True,
            groups=["rate-limit"],
            images_per_minute=0,
        )
        assert report.exit_status == 0, report.text()
        (answer,) = answers(report).values()
        seen[server] = answer
        server.faults.reset()
    assert "429 RATE_LIMIT_EXCEEDED" in seen[documented]
    assert "Retry-After '" in seen[documented]
    assert "Retry-After not sent" in seen[observed]


def test_a_plan_dearer_than_max_cost_sends_nothing(documented: ReferenceServer) -> None:
    documented.faults.reset()
    price = build_plan().price
    with pytest.raises(BudgetExceededError):
        run(api_key=KEY, base_url=documented.url, max_cost=price / 2, images_per_minute=0)
    assert documented.faults.api_requests == 0


def test_the_cli_refuses_a_dear_plan_with_one_line_after_printing_it(
    documented: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", KEY)
    documented.faults.reset()
    price = build_plan().price
    code = main(["verify", "--base-url", documented.url, "--max-cost", str(price / 2)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert f"price: ${price} " in err
    (line,) = [text for text in err.splitlines() if text.startswith("novita-flux:")]
    assert "exceeds the budget" in line
    assert "nothing was sent" in line
    assert documented.faults.api_requests == 0


def test_the_plan_and_its_price_are_shown_before_anything_is_sent(
    documented: ReferenceServer,
) -> None:
    counted_at_plan = []
    report = verify(
        documented,
        groups=["auth"],
        on_plan=lambda plan: counted_at_plan.append(documented.faults.api_requests),
    )
    assert counted_at_plan == [0]
    assert documented.faults.api_requests == 3
    assert report.exit_status == 0


def test_the_cli_prints_a_json_report_and_exits_0_when_the_spec_holds(
    documented: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", KEY)
    documented.faults.reset()
    argv = ["verify", "--base-url", documented.url, "--images-per-minute", "0", "--json"]
    code = main([*argv, "--only", "bounds,auth"])
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert code == 0 == report["exit_status"]
    assert report["status"] == "held"
    assert {probe["group"] for probe in report["probes"]} == {"bounds", "auth"}
    assert err.index("price: $") < err.index("[1/")  # the plan came first
    assert KEY not in out + err


def test_without_a_key_nothing_is_sent_and_the_exit_status_is_2(
    documented: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    documented.faults.reset()
    code = main(["verify", "--base-url", documented.url])
    _, err = capsys.readouterr()
    assert code == 2
    (line,) = [text for text in err.splitlines() if text.startswith("novita-flux:")]
    assert "NOVITA_API_KEY" in line
    assert "nothing was sent" in line
    assert documented.faults.api_requests == 0


def test_an_unreachable_api_leaves_everything_unchecked(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the run: nothing listens there
    report = run(api_key=KEY, base_url=f"http://127.0.0.1:{port}", images_per_minute=0)
    assert report.exit_status == 2
    assert report.verdict().startswith("nothing could be checked: the API could not be reached")
    assert {result.verdict for result in report.results} == {"unchecked"}
    assert len(sleeps) == 2  # two retries of a request that never left, then it stopped


def test_a_refused_key_stops_the_run_after_one_request(documented: ReferenceServer) -> None:
    documented.faults.reset()
    documented.account.reset()
    report = run(api_key="not-the-key", base_url=documented.url, images_per_minute=0)
    assert report.exit_status == 2
    # The first request is the balance, read with the key: refused, nothing more is sent.
    assert (documented.account.reads, documented.faults.api_requests) == (1, 0)
    assert "the API refused the key: 403 INVALID_API_KEY" in report.verdict()


def test_a_key_refused_the_balance_goes_on_and_the_price_check_cannot_tell(
    documented: ReferenceServer,
) -> None:
    documented.faults.reset()
    documented.account.reset()
    documented.account.deny_reads("API_NOT_ALLOWED")  # a key without billing rights
    report = run(api_key=KEY, base_url=documented.url, images_per_minute=0, groups=["balance"])
    documented.account.deny_reads(None)
    verdicts = {result.probe.id: result for result in report.results}
    assert documented.faults.api_requests == 1  # the whole-units request was still sent
    assert verdicts["reads.balanceDetail"].verdict == "answered"
    assert "403 API_NOT_ALLOWED" in verdicts["reads.balanceDetail"].summary
    price = verdicts["balance.price"]
    assert price.verdict == "answered"
    assert price.summary.startswith("could not tell: the balance could not be read before")


def test_a_429_nobody_asked_for_is_waited_out_and_the_probe_sent_again(
    documented: ReferenceServer, sleeps: Sleeps
) -> None:
    documented.faults.reset()
    documented.faults.rate_limit_next(1, retry_after=3)
    report = run(api_key=KEY, base_url=documented.url, groups=["bounds"], images_per_minute=0)
    assert report.exit_status == 0, report.text()
    assert sleeps == [3.0]


@pytest.mark.parametrize("retry_after", [3, int(MAX_RETRY_AFTER) + 1])
def test_a_429_is_waited_out_exactly_when_the_client_would(
    documented: ReferenceServer, sleeps: Sleeps, retry_after: int
) -> None:
    """verify sends again under the client's own policy (_retry): a Retry-After past
    MAX_RETRY_AFTER is sat through by neither, and the 429 is what the probe got."""
    documented.faults.reset()
    documented.faults.rate_limit_next(1, retry_after=retry_after)
    with contextlib.suppress(RateLimitError):
        FluxSchnell(api_key=KEY, base_url=documented.url).generate("x", seed=1)
    by_client = list(sleeps)
    sleeps.clear()
    documented.faults.reset()
    documented.faults.rate_limit_next(1, retry_after=retry_after)
    run(api_key=KEY, base_url=documented.url, groups=["bounds"], images_per_minute=0)
    waits = [] if retry_after > MAX_RETRY_AFTER else [float(retry_after)]
    assert sleeps == by_client == waits


def test_an_answer_slower_than_the_timeout_leaves_its_probe_unchecked(
    documented: ReferenceServer,
) -> None:
    documented.faults.reset()
    documented.faults.drip_next(1, interval=0.2)
    report = run(
        api_key=KEY,
        base_url=documented.url,
        groups=["bounds"],
        images_per_minute=0,
        timeout=0.5,
    )
    assert report.exit_status == 2
    first = report.results[0]
    assert first.verdict == "unchecked"
    assert "took longer than its timeout" in (first.unchecked or "")
    assert all(result.verdict == "conforms" for result in report.results[1:])
    assert "could not be checked" in report.verdict()


def test_verify_takes_the_same_api_options_as_every_command_that_calls_the_api() -> None:
    """Shared, not copied: the options of the API group, as generate and batch have them."""
    commands = {
        name: parser
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, parser in action.choices.items()
    }

    def api_options(name: str) -> set[tuple[str, ...]]:
        (group,) = [g for g in commands[name]._action_groups if g.title and "API" in g.title]
        return {tuple(action.option_strings) for action in group._group_actions}

    assert api_options("verify") == api_options("generate") == api_options("batch")
    assert ("--allow-insecure",) in api_options("verify")  # verify's own error suggests it


def test_verify_mock_checks_the_reference_server_with_no_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    code = main(["verify", "--mock", "--only", "auth,invalid", "--json"])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert code == 0 == report["exit_status"]
    assert report["base_url"].startswith("http://127.0.0.1:")


def test_verify_allow_insecure_lets_plain_http_go_to_another_host(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", KEY)
    argv = ["verify", "--base-url", "http://host.invalid", "--only", "auth", "--max-retries", "0"]
    assert main(argv) == 2
    assert "unencrypted" in capsys.readouterr().err  # refused, nothing sent
    assert main([*argv, "--allow-insecure"]) == 2
    out, _ = capsys.readouterr()
    assert "the API could not be reached: POST http://host.invalid/" in out  # it was tried
    assert sleeps == []  # --max-retries 0


def test_max_retries_bounds_the_tries_of_a_request_that_never_left(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for max_retries in (0, 3):
        sleeps.clear()
        report = run(
            api_key=KEY,
            base_url=f"http://127.0.0.1:{port}",
            images_per_minute=0,
            max_retries=max_retries,
        )
        assert report.exit_status == 2
        assert len(sleeps) == max_retries


@pytest.mark.parametrize(
    ("reason", "retry_server_errors", "status"),
    [
        ("TASK_FAILED", False, 2),  # may have been billed: never sent again unasked
        ("TASK_FAILED", True, 0),  # asked: sent again, and checked
        ("SERVICE_NOT_AVAILABLE", False, 0),  # the spec says it cost nothing: sent again
    ],
)
def test_a_server_error_is_sent_again_exactly_when_the_client_would(
    documented: ReferenceServer,
    sleeps: Sleeps,
    reason: str,
    retry_server_errors: bool,
    status: int,
) -> None:
    documented.faults.reset()
    documented.faults.fail_next(1, reason=reason)
    report = run(
        api_key=KEY,
        base_url=documented.url,
        groups=["bounds"],
        images_per_minute=0,
        retry_server_errors=retry_server_errors,
    )
    assert report.exit_status == status, report.text()
    assert len(sleeps) == (status == 0)


def test_plain_http_is_for_loopback_hosts_only() -> None:
    with pytest.raises(ValidationError, match="unencrypted"):
        run(api_key=KEY, base_url="http://api.example.com", images_per_minute=0)


def test_the_default_budget_covers_the_default_plan_at_its_worst() -> None:
    plan = build_plan(probe_rate_limit=True)
    assert plan.worst_case < DEFAULT_MAX_COST == Decimal("0.01")


def test_an_answer_the_client_cannot_read_is_reported_even_when_the_judge_accepts_it(
    documented: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(response: object, *args: object) -> object:
        raise ResponseValidationError(response, "a client bug")  # type: ignore[arg-type]

    monkeypatch.setattr(_judge, "parse_generation", refuse)
    report = verify(documented, groups=["types"])
    assert report.exit_status == 1
    for result in report.results:
        assert result.of_kind("deviates") == [
            Finding("deviates", "client", "a body the client reads", "a client bug")
        ]


def test_a_refusal_the_client_maps_to_the_wrong_exception_is_reported(
    documented: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_judge, "status_error", lambda response: APIStatusError(response, {}, None))
    report = verify(documented, groups=["auth"])
    assert report.exit_status == 1
    for result in report.results:
        (finding,) = result.of_kind("deviates")
        assert finding.where == "client"
        assert finding.spec == "the client to raise AuthenticationError"
        assert finding.got == "APIStatusError"


def test_neither_the_package_nor_the_cli_loads_the_verify_machinery() -> None:
    code = (
        "import sys, novita_flux, novita_flux._cli; "
        "print(sorted(m for m in sys.modules if m.startswith('novita_flux.verify.')))"
    )
    assert printed(code) == "['novita_flux.verify._probes']"


# --- the price formula against the account ------------------------------------------------------


def with_charges(server: ReferenceServer, change: Callable[[Decimal], Decimal]) -> None:
    """A stand-in for an API that takes `change(price)` for each task instead of its price."""
    account = server.account
    take = type(account).charge
    account.charge = lambda price: take(account, change(price))  # type: ignore[method-assign]


@pytest.fixture
def stand_in() -> Iterator[ReferenceServer]:
    with ReferenceServer(api_key=KEY, balance="1") as server:
        yield server


def test_the_price_check_sees_an_api_that_overcharges_by_one_unit(
    stand_in: ReferenceServer,
) -> None:
    with_charges(stand_in, lambda price: price + Decimal("0.0001"))
    report = verify(stand_in, groups=["balance"])
    assert [r.probe.id for r in report.results] == [
        "reads.balanceDetail",
        "balance.whole_units",
        "balance.price",
    ]
    price = report.results[-1]
    assert price.verdict == "deviates"
    (finding,) = price.findings
    assert finding.spec.startswith("a drop of the price of the 1 billed request(s), 15 unit(s)")
    assert finding.got.startswith("a drop of 16 unit(s)")
    assert report.exit_status == 1


def test_the_price_check_says_how_the_api_appears_to_round(stand_in: ReferenceServer) -> None:
    # Each task rounded up to a whole unit: the run's 16 tasks, most of them 0.03 of a unit.
    with_charges(
        stand_in,
        lambda price: (
            (price / Decimal("0.0001")).to_integral_value(rounding="ROUND_CEILING")
            * Decimal("0.0001")
        ),
    )
    report = verify(stand_in)
    price = report.results[-1]
    assert price.verdict == "deviates"
    assert "the drop fits each task rounded up to a whole unit" in price.findings[0].got


def test_the_price_check_cannot_tell_when_charges_have_not_shown_yet(
    stand_in: ReferenceServer,
) -> None:
    with_charges(stand_in, lambda price: Decimal(0))  # billed later, if ever
    report = verify(stand_in, groups=["balance"])
    price = report.results[-1]
    assert price.verdict == "answered"
    assert price.summary.startswith(
        "could not tell: the balance dropped by 0 unit(s) against the price of the 1 billed "
        "request(s), 15 unit(s)"
    )
    assert "the charges may show up later" in price.summary
