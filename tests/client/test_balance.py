"""The account's balance: read by the client in exact USD, kept by the reference server to the
last digit of every price, and checked before a batch (or, on request, a call) is sent."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from novita_flux import (
    APIConnectionError,
    AsyncFluxSchnell,
    BadRequestError,
    Balance,
    BudgetExceededError,
    FluxSchnell,
    InsufficientBalanceError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    _base_client,
    _deadline,
    _spec,
    estimate_cost,
)
from novita_flux._cli import main
from novita_flux.testing import ReferenceServer
from novita_flux.testing._account import UNLIMITED_REPORTED, Account
from tests.support import Sleeps, hooked

pytestmark = pytest.mark.slow

SMALL = {"prompt": "a fox", "width": 512, "height": 512}  # $0.00075: 7.5 units
PRICE = estimate_cost(512, 512, 4)


@pytest.fixture(scope="module")
def running() -> Iterator[ReferenceServer]:
    with ReferenceServer() as server:
        yield server


@pytest.fixture
def server(running: ReferenceServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReferenceServer]:
    running.faults.reset()
    running.account.reset()
    monkeypatch.setenv("NOVITA_API_KEY", running.api_key)
    monkeypatch.setenv("NOVITA_BASE_URL", running.url)
    yield running
    running.faults.reset()
    running.account.reset()


@pytest.fixture
def flux(server: ReferenceServer) -> Iterator[FluxSchnell]:
    with FluxSchnell(api_key=server.api_key, base_url=server.url) as client:
        yield client


# --- the reference server's account -------------------------------------------------------------


def test_each_billed_task_takes_its_exact_price_and_the_report_rounds_down(
    server: ReferenceServer, flux: FluxSchnell
) -> None:
    server.account.balance = "0.01"  # 100 units
    flux.generate(**SMALL)
    flux.generate(**SMALL)
    assert server.account.balance == Decimal("0.01") - 2 * PRICE == Decimal("0.0085")
    flux.generate("x", width=64, height=64, steps=1)  # 0.0029296875 of a unit
    exact = Decimal("0.0085") - estimate_cost(64, 64, 1)
    assert server.account.balance == exact
    balance = flux.balance()
    assert balance.units["availableBalance"] == 84  # 84.97...: never more than there is
    assert balance.available_balance == Decimal("0.0084")
    assert server.account.spent == Decimal("0.01") - exact


def test_a_task_the_balance_cannot_pay_for_is_refused_unbilled_with_the_profile_s_status(
    server: ReferenceServer, flux: FluxSchnell
) -> None:
    server.account.balance = PRICE - Decimal("0.0000000001")
    with pytest.raises(BadRequestError, match="BILLING_BALANCE_NOT_ENOUGH") as refused:
        flux.generate(**SMALL)
    assert refused.value.status_code == 400
    assert not refused.value.possibly_billed
    assert server.faults.billed == []
    assert server.account.spent == 0
    with ReferenceServer(profile="observed", balance=0) as observed:
        with (
            FluxSchnell(api_key=observed.api_key, base_url=observed.url) as other,
            pytest.raises(BadRequestError, match="BILLING_BALANCE_NOT_ENOUGH") as again,
        ):
            other.generate(**SMALL)
        assert again.value.status_code == 403  # OBSERVED.md row 7
        assert observed.faults.billed == []


def test_an_account_with_no_balance_never_refuses_and_still_shows_what_it_spent(
    server: ReferenceServer, flux: FluxSchnell
) -> None:
    assert server.account.balance is None
    before = flux.balance().available_balance
    assert before == UNLIMITED_REPORTED
    flux.generate("x", width=1024, height=1024)  # 30 units
    assert flux.balance().available_balance == before - Decimal("0.003")


def test_a_balance_is_refused_when_it_is_not_an_amount() -> None:
    for wrong in (-1, "lots", float("nan"), True):
        with pytest.raises(ValueError, match="balance"):
            Account(wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NOT_A_REASON"):
        Account().deny_reads("NOT_A_REASON")


# --- the library ---------------------------------------------------------------------------------


def test_the_balance_is_asked_for_with_a_bare_get_and_the_key() -> None:
    sent: list[httpx.Request] = []
    body = _spec.response_example(_spec.BALANCE)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=body)

    with httpx.Client(transport=httpx.MockTransport(answer)) as http:
        FluxSchnell(api_key="sk-1", http_client=http).balance()
    (request,) = sent
    assert (request.method, request.url.path) == ("GET", _spec.operation(_spec.BALANCE).path)
    assert request.content == b""  # no body, not even `null`
    assert "content-length" not in request.headers
    assert request.headers["authorization"] == "Bearer sk-1"
    assert request.headers["content-type"] == "application/json"  # as Novita's pages list it


def test_balance_is_a_frozen_value_of_exact_usd(server: ReferenceServer, flux: FluxSchnell) -> None:
    server.account.balance = "12.3456"
    balance = flux.balance()
    assert isinstance(balance, Balance)
    assert balance.available_balance == balance.cash_balance == Decimal("12.3456")
    assert (balance.credit_limit, balance.outstanding_invoices) == (0, 0)
    assert balance.pending_charges == 0
    assert balance.units["availableBalance"] == 123456
    assert balance.raw["availableBalance"] == "123456"  # as sent: a string of digits
    with pytest.raises(AttributeError):
        balance.available_balance = Decimal(0)  # type: ignore[misc]
    assert balance.as_dict()["available_balance"] == "12.3456"
    assert "units" not in repr(balance)


@pytest.mark.anyio
async def test_the_async_client_reads_the_same_balance(server: ReferenceServer) -> None:
    server.account.balance = "0.5"
    async with AsyncFluxSchnell(api_key=server.api_key, base_url=server.url) as flux:
        balance = await flux.balance()
    assert balance.available_balance == Decimal("0.5000")


@pytest.mark.parametrize(
    ("reason", "error"),
    [("API_NOT_ALLOWED", PermissionDeniedError), ("API_NOT_FOUND", NotFoundError)],
)
def test_a_balance_that_cannot_be_read_is_a_typed_error_never_billed(
    server: ReferenceServer, flux: FluxSchnell, reason: str, error: type[Exception]
) -> None:
    server.account.deny_reads(reason)
    with pytest.raises(error) as raised:
        flux.balance()
    assert not raised.value.possibly_billed  # type: ignore[attr-defined]
    assert server.account.reads == 1  # a 403 or a 404 does not pass with time: not retried


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_generate_many_checks_the_balance_only_when_asked(
    server: ReferenceServer, flux: FluxSchnell
) -> None:
    server.account.balance = PRICE * 3 / 2  # enough for one of the two, not both
    with pytest.raises(InsufficientBalanceError) as refused:
        flux.generate_many([SMALL, SMALL], check_balance=True)
    assert isinstance(refused.value, BudgetExceededError)  # caught where a budget is
    assert (refused.value.cost, refused.value.available) == (2 * PRICE, Decimal("0.0011"))
    assert server.faults.api_requests == 0
    results = flux.generate_many([SMALL, SMALL], concurrency=1)  # not asked: sent, one refused
    assert [result.ok for result in results] == [True, False]


@pytest.mark.anyio
async def test_async_generate_many_checks_the_balance_too(server: ReferenceServer) -> None:
    server.account.balance = "0.0008"  # one, and a fraction of a unit more: reported as 8 units
    async with AsyncFluxSchnell(api_key=server.api_key, base_url=server.url) as flux:
        with pytest.raises(InsufficientBalanceError):
            await flux.generate_many([SMALL, SMALL], check_balance=True)
        assert server.faults.api_requests == 0
        (result,) = await flux.generate_many([SMALL], check_balance=True)
    assert result.ok


def test_a_balance_that_cannot_be_read_is_a_warning_and_the_batch_goes_on(
    server: ReferenceServer, flux: FluxSchnell, caplog: pytest.LogCaptureFixture
) -> None:
    server.account.deny_reads("API_NOT_ALLOWED")
    with caplog.at_level(logging.WARNING, logger="novita_flux"):
        (result,) = flux.generate_many([SMALL], check_balance=True)
    assert result.ok
    assert "balance could not be read" in caplog.text
    assert "403 API_NOT_ALLOWED" in caplog.text


# --- the command line ----------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_balance_prints_the_account_s_balance_and_json_the_units(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.account.balance = "100"
    code, out, err = run(capsys, "balance")
    assert (code, err) == (0, "")
    assert out.startswith("available $100.00 (cash $100.00, credit limit $0.00")
    code, out, _ = run(capsys, "balance", "--json")
    data = json.loads(out)
    assert data["available_balance"] == "100.0000"
    assert data["units"]["availableBalance"] == 1000000
    assert data["currency"] == "USD"


def test_balance_with_mock_reads_the_reference_server_s(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    code, out, _ = run(capsys, "balance", "--mock", "--json")
    assert code == 0
    assert Decimal(json.loads(out)["available_balance"]) == UNLIMITED_REPORTED


def test_a_balance_that_cannot_be_read_is_exit_status_1(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.account.deny_reads("API_NOT_FOUND")
    code, out, err = run(capsys, "balance")
    assert (code, out) == (1, "")
    (line,) = err.splitlines()
    assert line.startswith("novita-flux: NotFoundError: 404 API_NOT_FOUND")


def test_generate_check_balance_refuses_what_the_account_cannot_pay_for(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.account.balance = "0.0007"
    argv = ["generate", "a fox", "--width", "512", "--height", "512", "--out", str(tmp_path)]
    code, out, err = run(capsys, *argv, "--check-balance")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        "novita-flux: estimated cost $0.00075 of this request exceeds the account's available "
        "balance $0.0007; nothing was sent"
    )
    assert server.faults.api_requests == 0
    assert not list(tmp_path.glob(".novita-flux-call-*"))  # nothing recorded as in flight
    # Exactly the price is 7.5 units, reported as 7: the check sees what the API reports.
    server.account.balance = "0.00075"
    assert run(capsys, *argv, "--check-balance")[0] == 2
    server.account.balance = "0.0008"
    code, _, _ = run(capsys, *argv, "--check-balance")
    assert code == 0
    assert server.faults.api_requests == 1


def test_generate_without_check_balance_does_not_read_it(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    server.account.deny_reads("API_NOT_ALLOWED")  # a read would say so
    code, _, err = run(
        capsys, "generate", "x", "--width", "64", "--height", "64", "--out", str(tmp_path)
    )
    assert code == 0
    assert server.account.reads == 0
    assert "balance" not in err


def test_serve_mock_gives_its_account_the_balance(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import novita_flux.testing

    served = []
    monkeypatch.setattr(novita_flux.testing, "serve", lambda app, **_: served.append(app))
    assert run(capsys, "serve-mock", "--balance", "2.5")[0] == 0
    assert run(capsys, "serve-mock")[0] == 0
    assert [app.state.account.balance for app in served] == [Decimal("2.5"), None]


# --- the batch's pre-flight (issue 21's "done when") ---------------------------------------------


def batch(
    capsys: pytest.CaptureFixture[str], source: Path, out: Path, *extra: str
) -> tuple[int, str, str]:
    argv = ["batch", str(source), "--out", str(out), "--images-per-minute", "0", *extra]
    return run(capsys, *argv)


@pytest.fixture
def four_lines(tmp_path: Path) -> Path:
    """Four requests of $0.00075 each: $0.003 in all, 30 units of the balance."""
    source = tmp_path / "in.jsonl"
    lines = [json.dumps(SMALL | {"prompt": f"fox {i}", "seed": i}) for i in range(4)]
    source.write_text("\n".join(lines) + "\n")
    return source


@pytest.mark.parametrize("balance", ["0.0029", "0.0015"])  # a unit short; half the plan
def test_a_batch_the_balance_cannot_pay_for_is_refused_before_any_post(
    server: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    four_lines: Path,
    tmp_path: Path,
    balance: str,
) -> None:
    server.account.balance = balance
    code, out, err = batch(capsys, four_lines, tmp_path / "out")
    assert (code, out) == (2, "")
    assert err.splitlines()[-1] == (
        f"novita-flux: estimated cost $0.003 of this batch (4 request(s) still to send) "
        f"exceeds the account's available balance ${Decimal(balance):.4f}; nothing was sent; "
        "--no-balance-check starts it anyway"
    )
    assert server.faults.api_requests == 0
    assert server.account.reads == 1


def test_a_batch_the_balance_covers_starts_and_says_so(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str], four_lines: Path, tmp_path: Path
) -> None:
    server.account.balance = "0.003"  # exactly enough
    code, _, err = batch(capsys, four_lines, tmp_path / "out")
    assert code == 0
    assert "balance: $0.003 available, enough for the $0.003" in err
    assert server.account.balance == 0
    assert server.faults.api_requests == 4


def test_without_the_check_a_batch_runs_until_the_balance_runs_out_and_loses_nothing(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str], four_lines: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    server.account.balance = "0.0015"  # two of the four
    code, _, err = batch(capsys, four_lines, out, "--no-balance-check", "--concurrency", "1")
    assert code == 1
    assert server.account.reads == 0  # not read at all
    assert "stopped the batch: BadRequestError: 400 BILLING_BALANCE_NOT_ENOUGH" in err
    assert len(server.faults.billed) == 2  # it stopped at the first refusal
    assert len(list(out.glob("*.png"))) == 2  # what was paid for is saved
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(row["status"] for row in manifest) == ["failed", "planned", "saved", "saved"]
    # Topped up, the same command finishes the rest, paying for nothing twice.
    server.account.balance = "1"
    code, _, _ = batch(capsys, four_lines, out)
    assert code == 0
    assert len(server.faults.billed) == 4
    assert len({json.dumps(body, sort_keys=True) for _, body in server.faults.billed}) == 4
    assert len(list(out.glob("*.png"))) == 4


def test_a_balance_that_cannot_be_read_is_one_line_and_the_batch_goes_on(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str], four_lines: Path, tmp_path: Path
) -> None:
    server.account.deny_reads("API_NOT_ALLOWED")  # a key without billing rights
    code, _, err = batch(capsys, four_lines, tmp_path / "out")
    assert code == 0
    notices = [line for line in err.splitlines() if "balance could not be read" in line]
    assert len(notices) == 1
    assert "PermissionDeniedError: 403 API_NOT_ALLOWED" in notices[0]
    assert server.faults.api_requests == 4


def test_a_batch_with_nothing_left_to_send_does_not_read_the_balance(
    server: ReferenceServer, capsys: pytest.CaptureFixture[str], four_lines: Path, tmp_path: Path
) -> None:
    assert batch(capsys, four_lines, tmp_path / "out")[0] == 0
    reads = server.account.reads
    assert batch(capsys, four_lines, tmp_path / "out")[0] == 0  # everything saved already
    assert server.account.reads == reads


# --- retries, without a server --------------------------------------------------------------------

AMOUNTS = ("availableBalance", "cashBalance", "creditLimit", "outstandingInvoices")


def test_reading_the_balance_is_tried_again_after_a_5xx_and_broken_connections(
    sleeps: Sleeps,
) -> None:
    # Never billed: a read that breaks after the request went out is retried too; the wait a
    # 503 names is kept, and the backoff grows with each attempt.
    answers: list[Any] = [
        httpx.Response(503, headers={"Retry-After": "3"}),
        httpx.ReadError("reset"),
        httpx.ReadError("reset"),
        httpx.Response(200, json=dict.fromkeys(AMOUNTS, "5000")),
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        step = answers.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    http = httpx.Client(transport=httpx.MockTransport(answer))
    balance = FluxSchnell(api_key="k", http_client=http, max_retries=3).balance()
    assert balance.available_balance == Decimal("0.5")
    assert answers == []
    assert sleeps[0] == 3.0
    assert 0.75 <= sleeps[1] <= 1.0  # backoff(1): 1 s, cut by up to a quarter
    assert 1.5 <= sleeps[2] <= 2.0  # backoff(2)
    assert len(sleeps) == 3


def test_a_balance_that_cannot_be_reached_is_a_connection_error_never_billed(
    sleeps: Sleeps,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with pytest.raises(APIConnectionError) as raised:
        FluxSchnell(api_key="k", http_client=http, max_retries=1).balance()
    assert str(raised.value) == (
        "GET https://api.novita.ai/openapi/v1/billing/balance/detail failed: ReadError: reset"
    )
    assert raised.value.possibly_billed is False  # a bool, as on every error
    assert len(sleeps) == 1


def answering(*answers: Any) -> tuple[httpx.Client, list[httpx.Request]]:
    """An injected client whose transport gives these answers (an exception is raised) in turn,
    and the requests it was sent."""
    sent: list[httpx.Request] = []
    left = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        step = left.pop(0)
        if isinstance(step, Exception):
            raise step
        assert isinstance(step, httpx.Response)
        return step

    return httpx.Client(transport=httpx.MockTransport(answer)), sent


def test_the_per_call_timeout_of_a_balance_read_bounds_its_request_and_whole_exchange(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for every call: the timeout given to balance() replaces the client's, both in httpx's
    # per-phase timeouts and in the deadline of the whole exchange.
    exchanges: list[float | None] = []
    original = _deadline.deadline_in

    def spy(seconds: float | None) -> Any:
        exchanges.append(seconds)
        return original(seconds)

    monkeypatch.setattr(_deadline, "deadline_in", spy)
    http, sent = answering(httpx.Response(200, json=dict.fromkeys(AMOUNTS, "5000")))
    FluxSchnell(api_key="k", http_client=http, timeout=60).balance(timeout=12.5)
    assert sent[0].extensions["timeout"] == dict.fromkeys(
        ("connect", "read", "write", "pool"), 12.5
    )
    assert exchanges == [12.5]


def test_the_per_call_retries_of_a_balance_read_replace_the_clients(sleeps: Sleeps) -> None:
    # max_retries=0: the first 503 is the answer, raised with the wait it named, and never
    # billed (False, not merely falsy: possibly_billed is a bool).
    http, sent = answering(httpx.Response(503, headers={"Retry-After": "3"}))
    with pytest.raises(InternalServerError) as raised:
        FluxSchnell(api_key="k", http_client=http, max_retries=3).balance(max_retries=0)
    assert len(sent) == 1
    assert sleeps == []
    assert raised.value.retry_after == 3.0
    assert raised.value.possibly_billed is False


def test_reading_the_balance_passes_no_money_path_fault_point(sleeps: Sleeps) -> None:
    # The read is never billed: it is not an API request "about to go on the wire" in the fault
    # tests' sense (api.sending), which a stopped call would have to account for.
    reached: list[str] = []
    http, _ = answering(httpx.Response(200, json=dict.fromkeys(AMOUNTS, "5000")))
    with hooked(reached.append):
        FluxSchnell(api_key="k", http_client=http).balance()
    assert reached == []


@pytest.mark.parametrize(
    ("first", "retried"),
    [
        (httpx.Response(503), False),  # may follow billed work
        (httpx.ReadError("reset"), False),  # broke once sent: may have run
        (httpx.Response(429), True),  # never reached the task
        (httpx.Response(503, json={"code": 503, "reason": "SERVICE_NOT_AVAILABLE"}), True),
    ],
)
def test_were_the_spec_to_bill_the_balance_it_would_be_retried_as_carefully_as_a_generation(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch, first: Any, retried: bool
) -> None:
    # _balance_flow's promise for a spec without `x-billed: never` on the balance: only what
    # cannot have been billed is sent again, and what may have been says so.
    def billed(operation_id: str) -> _spec.Operation:
        found = _spec.operation(operation_id)
        if operation_id != _spec.BALANCE:
            return found
        body = {key: value for key, value in found.body.items() if key != "x-billed"}
        return found._replace(body=body)

    monkeypatch.setattr(_base_client, "operation", billed)
    http, sent = answering(first, httpx.Response(200, json=dict.fromkeys(AMOUNTS, "5000")))
    client = FluxSchnell(api_key="k", http_client=http, max_retries=1)
    if retried:
        assert client.balance().available_balance == Decimal("0.5")
        assert len(sent) == 2
        return
    with pytest.raises((InternalServerError, APIConnectionError)) as raised:
        client.balance()
    assert len(sent) == 1
    assert raised.value.possibly_billed is True
