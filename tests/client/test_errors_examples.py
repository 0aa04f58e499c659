"""Errors as objects that travel: every exception in novita_flux._errors, raised as the client
raises it, survives pickle (a multiprocessing pool, a task queue, a cache of failures) and
carries no key, neither pickled nor in the response it keeps; and what the balance's errors say
and keep."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from novita_flux import FluxSchnell, GeneratedImage, NovitaError, _errors
from tests.support import API_URL, KEY, error_body, success_body

IMAGE = "https://storage.example.com/out/task-1/0.png?X-Amz-Signature=abc"


def client(answer: Callable[[httpx.Request], httpx.Response]) -> FluxSchnell:
    http = httpx.Client(transport=httpx.MockTransport(answer))
    return FluxSchnell(api_key=KEY, http_client=http, max_retries=0)


def raised(call: Callable[[], object]) -> NovitaError:
    with pytest.raises(NovitaError) as caught:
        call()
    return caught.value


def answered(status: int, body: Any = None, **headers: str) -> NovitaError:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {KEY}"  # the key went out
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return raised(lambda: client(answer).generate("x", seed=1))


def connection(exc: type[httpx.TransportError]) -> NovitaError:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc("no answer", request=request)

    return raised(lambda: client(answer).generate("x", seed=1))


def image(status: int, expires_in: int = 3600, content: bytes = b"not an image") -> NovitaError:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    gen = _generation(GeneratedImage(IMAGE, 3600, "png", expires, 0))

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content)

    return raised(lambda: client(answer).download(gen.images[0]))


def unsaved(tmp: Path) -> NovitaError:
    expires = datetime.now(UTC) - timedelta(seconds=5)  # expired: refused before any request
    gen = _generation(GeneratedImage(IMAGE, 3600, "png", expires, 0))
    return raised(lambda: client(lambda request: httpx.Response(500)).save(gen, tmp))


def balance_answered(content: bytes) -> NovitaError:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content)

    return raised(lambda: client(answer).balance())


def balance_short() -> NovitaError:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.method == "GET", "nothing but the balance may be sent"
        amounts = ("availableBalance", "cashBalance", "creditLimit", "outstandingInvoices")
        return httpx.Response(200, json=dict.fromkeys(amounts, "0"))

    requests = [{"prompt": "x", "seed": 1}]
    return raised(lambda: client(answer).generate_many(requests, check_balance=True))


def _generation(*images: GeneratedImage) -> Any:
    from novita_flux import Generation

    request = {"prompt": "x", "width": 64, "height": 64, "steps": 1, "seed": 1, "image_num": 1}
    return Generation("task-1", list(images), 1, request, cost=0)  # type: ignore[arg-type]


def every_error(tmp: Path) -> list[NovitaError]:
    """One of each exception the module defines, made the way the client makes it."""
    readable = {**success_body(), "images": [*success_body()["images"], {"image_url": 5}]}
    return [
        NovitaError("plain"),
        raised(lambda: FluxSchnell(api_key=KEY).generate("x", width=63)),  # ValidationError
        raised(lambda: FluxSchnell(api_key=KEY).generate("x", max_cost=0)),  # BudgetExceeded
        raised(lambda: FluxSchnell(api_key="")),  # MissingAPIKeyError
        answered(400, error_body(400, "INVALID_REQUEST_BODY", task_id="t-1")),
        answered(401, error_body(401, "FAILED_TO_AUTH")),
        answered(403, error_body(403, "SOMETHING_NEW")),  # PermissionDeniedError
        answered(404, b"<html>not found</html>"),
        answered(429, error_body(429, "RATE_LIMIT_EXCEEDED"), **{"Retry-After": "120"}),
        answered(500, error_body(500, "TASK_FAILED")),
        answered(418, b"I'm a teapot"),  # APIStatusError itself
        answered(200, b"{not json"),  # ResponseValidationError with nothing readable
        answered(200, readable),  # ResponseValidationError keeping a readable image
        connection(httpx.ConnectError),  # APIConnectionError
        connection(httpx.ReadTimeout),  # APITimeoutError, possibly billed
        image(404),  # ImageDownloadError
        image(403, content=b"<Error><Message>Request has expired</Message></Error>"),
        unsaved(tmp),  # SaveIncompleteError, of an ImageExpiredError
        balance_short(),  # InsufficientBalanceError
        balance_answered(b'{"availableBalance": "lots"}'),  # BalanceValidationError
    ]


def same(first: object, second: object) -> bool:
    """Equal as far as an error's attributes can say (httpx objects have no __eq__)."""
    if isinstance(first, httpx.Response) and isinstance(second, httpx.Response):
        return (
            (first.status_code, first.headers.multi_items(), first.content)
            == (second.status_code, second.headers.multi_items(), second.content)
            and first.request.method == second.request.method
            and first.request.url == second.request.url
            and first.request.headers.multi_items() == second.request.headers.multi_items()
        )
    if isinstance(first, NovitaError) and isinstance(second, NovitaError):
        return type(first) is type(second) and str(first) == str(second)
    if isinstance(first, list | tuple) and isinstance(second, list | tuple):
        return len(first) == len(second) and all(map(same, first, second))
    return first == second


def test_every_error_round_trips_through_pickle_and_never_carries_the_key(
    tmp_path: Path,
) -> None:
    errors = every_error(tmp_path)
    defined = {
        cls
        for _, cls in inspect.getmembers(_errors, inspect.isclass)
        if issubclass(cls, NovitaError) and cls.__module__ == _errors.__name__
    }
    assert {type(error) for error in errors} == defined  # a new error class needs a case here
    for error in errors:
        data = pickle.dumps(error)
        assert KEY.encode() not in data, type(error).__name__
        back = pickle.loads(data)  # noqa: S301 - our own bytes, just written
        assert type(back) is type(error)
        assert str(back) == str(error)
        assert back.possibly_billed == error.possibly_billed
        assert vars(back).keys() == vars(error).keys()
        for name, value in vars(error).items():
            assert same(getattr(back, name), value), (type(error).__name__, name)


def test_a_status_error_keeps_its_request_with_the_key_redacted() -> None:
    error = answered(400, error_body(400, "INVALID_REQUEST_BODY"))
    assert isinstance(error, _errors.APIStatusError)
    request = error.response.request
    assert request.headers["Authorization"] == "[redacted]"
    assert str(request.url) == API_URL
    assert b'"prompt": "x"' in request.content or b'"prompt":"x"' in request.content
    assert KEY not in repr(vars(error)) + str(request.headers)


def test_a_balance_answer_that_breaks_the_contract_says_so_and_keeps_what_it_read() -> None:
    error = balance_answered(b'{"availableBalance": "lots"}')
    assert isinstance(error, _errors.BalanceValidationError)
    problem = "cashBalance: missing; required: a string matching '^-?[0-9]+$' or an integer"
    assert error.problem == problem
    assert error.body == {"availableBalance": "lots"}  # parsed, as a generation's answer is
    assert (
        str(error) == f"the API's 200 answer to the balance request breaks the contract: {problem}"
    )
    assert not error.possibly_billed


def test_an_insufficient_balance_error_made_without_naming_what_names_a_request() -> None:
    # The client always names what it refused ("batch", "request"); the default is for callers
    # who raise it themselves, as a custom preflight may.
    error = _errors.InsufficientBalanceError(Decimal("0.5"), Decimal("0.25"))
    assert str(error) == (
        "estimated cost $0.50 of this request exceeds the account's available balance $0.25; "
        "nothing was sent"
    )
    assert (error.cost, error.available) == (Decimal("0.5"), Decimal("0.25"))


def test_a_status_error_made_without_saying_may_have_been_billed_on_a_5xx() -> None:
    # The careful default for a caller that raises one itself (a test double, a wrapper): only
    # an operation known never to be billed says billable=False.
    response = httpx.Response(500, request=httpx.Request("POST", API_URL))
    error = _errors.InternalServerError(response, None, None)
    assert error.possibly_billed
    assert str(error).endswith(
        "; the call may have been billed, so it is not retried unless retry_server_errors=True"
    )


def test_a_kept_request_loses_its_credentials_only() -> None:
    # What is redacted is the key and cookies; the rest says what was sent.
    error = answered(400, error_body(400, "INVALID_REQUEST_BODY"))
    assert isinstance(error, _errors.APIStatusError)
    headers = error.response.request.headers
    assert headers["Authorization"] == "[redacted]"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("novita-flux/")


def test_a_request_without_credentials_is_kept_as_it_was_sent() -> None:
    # Nothing to redact: the error keeps the request itself, its timeout and all, not a copy.
    request = httpx.Request("GET", API_URL, extensions={"timeout": {"read": 5.0}})
    error = _errors.InternalServerError(httpx.Response(500, request=request), None, None)
    assert error.response.request is request
