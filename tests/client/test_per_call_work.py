"""What a call must not do again and again (issue 22): a guard on the client's per-call work that
counts instead of timing, so that it holds on any machine.

A valid answer builds no failure message (a `oneOf` branch that does not match is thrown away,
so writing out what it expected is wasted), and no call reads the spec or compiles a schema:
both are done once per process. Nor does a call parse the API's URL, make a JSON encoder, run an
auth flow to find out whether the key may go with a request built for the API's own origin, or
copy the answer into the generated model's objects: the URL and the headers are worked out once
per client, the encoder once per process, and the conformed answer is read as it stands. Each is
counted by wrapping the function that does it.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from novita_flux import (
    AsyncFluxSchnell,
    FluxSchnell,
    ValidationError,
    _base_client,
    _deadline,
    _schema,
    _spec,
)
from novita_flux_api.models import Flux1SchnellResponse
from tests.support import KEY, printed, success_body

CALLS = 20
# The functions that write a message, read the spec, compile a schema, or work out how long an
# exchange under the client's own timeout may take (once per client: _BaseClient._exchange_limits).
COUNTED: dict[Any, tuple[str, ...]] = {
    _schema: ("describe", "show", "compile_schema", "_checker"),
    _spec: ("document", "resolve", "operations_in"),
    _deadline: ("exchange_seconds",),
    json.JSONEncoder: ("__init__",),  # what json.dumps(..., separators=...) makes every time
    _base_client._APIKeyAuth: ("auth_flow",),
    Flux1SchnellResponse: ("from_dict",),
}


class Counts(Counter[str]):
    """Every call of a COUNTED function after start(), by name (the modules look each one up by
    name when they call it, so a wrapper put in its place sees every call)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self._monkeypatch = monkeypatch

    def start(self) -> None:
        for module, names in COUNTED.items():
            for name in names:
                self._monkeypatch.setattr(module, name, self._counting(name, getattr(module, name)))
        parse = httpx.URL.__init__

        def parsing(url: httpx.URL, *args: Any, **kwargs: Any) -> None:
            if args and isinstance(args[0], str):  # a URL made from another is not parsed again
                self["URL parsed"] += 1
            parse(url, *args, **kwargs)

        self._monkeypatch.setattr(httpx.URL, "__init__", parsing)

    def _counting(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self[name] += 1
            return function(*args, **kwargs)

        return wrapper


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    return Counts(monkeypatch)


def answering(ttl: int | str) -> httpx.MockTransport:
    body = success_body(image_num=2)
    for image in body["images"]:
        image["image_url_ttl"] = ttl  # an int, or the string of digits the other branch takes
    return answering_with(body)


def answering_with(body: Any) -> httpx.MockTransport:
    # Encoded once: the mock's own json= would make an encoder on every answer.
    content = json.dumps(body).encode()
    return httpx.MockTransport(lambda request: httpx.Response(200, content=content))


@pytest.mark.parametrize("ttl", [3600, "3600"])
def test_a_valid_call_builds_no_message_reads_no_spec_and_compiles_nothing(
    counts: Counts, ttl: int | str
) -> None:
    with httpx.Client(transport=answering(ttl)) as http:
        flux = FluxSchnell(api_key=KEY, http_client=http)
        flux.generate("warm up", image_num=2)  # the first call may compile what it needs
        counts.start()
        for number in range(CALLS):
            flux.generate(f"a lighthouse, take {number}", image_num=2, width=512, seed=number)
    assert counts == Counter()


@pytest.mark.parametrize("ttl", [3600, "3600"])
def test_a_valid_async_call_builds_no_message_reads_no_spec_and_compiles_nothing(
    counts: Counts, ttl: int | str
) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(transport=answering(ttl)) as http:
            flux = AsyncFluxSchnell(api_key=KEY, http_client=http)
            await flux.generate("warm up", image_num=2)
            counts.start()
            for number in range(CALLS):
                await flux.generate(f"take {number}", image_num=2, seed=number)
            results = await flux.generate_many(
                [{"prompt": f"batch {n}", "image_num": 2} for n in range(CALLS)]
            )
            assert all(result.ok for result in results)

    asyncio.run(run())
    assert counts == Counter()


def test_the_counting_sees_a_message_when_one_is_needed(counts: Counts) -> None:
    """The instrument works: a refused request does write its message."""
    with httpx.Client(transport=answering(3600)) as http:
        flux = FluxSchnell(api_key=KEY, http_client=http)
        counts.start()
        with pytest.raises(ValidationError) as refused:
            flux.generate("too narrow", width=63)
    assert str(refused.value) == "width: 63 is not an integer in [64, 2048]"
    assert counts["describe"] >= 1


def test_the_counting_sees_an_exchange_worked_out_for_a_timeout_of_the_calls_own(
    counts: Counts,
) -> None:
    """Only the client's own timeout is worked out once: one given to a call is its own."""
    with httpx.Client(transport=answering(3600)) as http:
        flux = FluxSchnell(api_key=KEY, http_client=http)
        flux.generate("warm up")
        counts.start()
        flux.generate("own timeout", timeout=5)
        flux.generate("own timeout again", timeout=5)
    assert set(counts) == {"exchange_seconds"}
    assert counts["exchange_seconds"] >= 2  # at least once for each of the two calls


def test_reading_the_balance_works_out_no_exchange_under_the_clients_own_timeout(
    counts: Counts,
) -> None:
    """balance() shares generate()'s once-per-client exchange limits, not a second reckoning."""
    body = _spec.response_example(_spec.BALANCE)
    with httpx.Client(transport=answering_with(body)) as http:
        flux = FluxSchnell(api_key=KEY, http_client=http)
        flux.balance()
        counts.start()
        for _ in range(CALLS):
            flux.balance()
        assert counts == Counter()
        flux.balance(timeout=5)
    assert set(counts) == {"exchange_seconds"}  # a timeout of the call's own is its own


def test_importing_the_client_and_a_first_generate_load_nothing_of_the_generated_package() -> None:
    """`import novita_flux` is a share of every command's start (issue 22): the generated models
    and client are loaded when the balance is first read, not before."""
    code = (
        "import json, sys, httpx\n"
        "from novita_flux import FluxSchnell\n"
        "from tests.support import KEY, success_body\n"
        "content = json.dumps(success_body()).encode()\n"
        "answer = httpx.MockTransport(lambda request: httpx.Response(200, content=content))\n"
        "with httpx.Client(transport=answer) as http:\n"
        "    FluxSchnell(api_key=KEY, http_client=http).generate('a fox')\n"
        "print(sorted(name for name in sys.modules if name.startswith('novita_flux_api')))"
    )
    assert printed(code) == "[]"
