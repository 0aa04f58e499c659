"""Every public call of the library, fuzzed from its own signature: whatever the arguments, only
a NovitaError escapes (a TypeError only for a keyword the call does not have), and a call that
is refused sends nothing.

The clients talk to the session's reference server over loopback (or through an injected httpx
client the fuzz drew, whose requests are counted too); a plausible Generation to save is one the
reference server really answered.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from novita_flux import (
    AsyncFluxSchnell,
    BudgetExceededError,
    FluxSchnell,
    Generation,
    MissingAPIKeyError,
    NovitaError,
    ValidationError,
)
from novita_flux.testing import ReferenceServer
from tests.fuzz.budget import fuzz
from tests.fuzz.conftest import Inputs, OutsideAttempts
from tests.fuzz.library import Call, an_async_callback, arguments, public_calls

CALLS = {call.label: call for call in public_calls()}
REFUSALS = (ValidationError, BudgetExceededError, MissingAPIKeyError)
FUZZ = fuzz()


class Counted:
    """Requests that left through a client the fuzz injected (answered by the reference server's
    app would be too slow to build per example: they are answered 503, which nothing retries)."""

    def __init__(self) -> None:
        self.requests = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return httpx.Response(503, json={"code": 503, "reason": "X", "message": "fuzz"})


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generation]:
    """A generation the reference server answered, with small images, to save and download."""
    with ReferenceServer() as server:
        flux = FluxSchnell(api_key=server.api_key, base_url=server.url)
        generation = flux.generate("a fox", width=64, height=64, image_num=2)
        yield generation


@pytest.fixture
def world(
    novita_server: ReferenceServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    sleeps: Any,
) -> ReferenceServer:
    """The key and the base URL in the environment, as a user sets them: a client built with no
    arguments talks to the reference server."""
    monkeypatch.setenv("NOVITA_API_KEY", novita_server.api_key)
    monkeypatch.setenv("NOVITA_BASE_URL", novita_server.url)
    monkeypatch.chdir(tmp_path)
    return novita_server


def plausible(
    answered: Generation, tmp_path: Path, counted: Counted, is_async: bool
) -> dict[str, st.SearchStrategy[Any]]:
    """Good values for the parameters whose type alone says too little."""
    transport = httpx.MockTransport(counted.handler)
    client: httpx.AsyncClient | httpx.Client = (
        httpx.AsyncClient(transport=transport) if is_async else httpx.Client(transport=transport)
    )
    small = st.sampled_from([64, 128])
    return {
        "prompt": st.sampled_from(["a fox", "renard roux, café ☕ 狐"]),
        "width": small,
        "height": small,
        "image_num": st.sampled_from([1, 2]),
        "generation": st.just(answered),
        "image": st.sampled_from(answered.images),
        "directory": st.sampled_from([tmp_path / "saved", str(tmp_path / "saved")]),
        "requests": st.just([{"prompt": "a fox", "width": 64, "height": 64}]),
        "http_client": st.sampled_from([None, client]),
        "on_result": st.just(None),
        "on_saved": st.just(None),
    }


def _invoke(call: Call, kwargs: dict[str, Any]) -> Any:
    """The call as a user makes it: a method on a client built from the environment (an async
    one inside its own event loop), a constructor or a function on its own."""
    if call.owner is None:
        return call.function(**kwargs)
    if call.name == "__init__":
        return call.owner(**kwargs)
    if call.is_async:
        return asyncio.run(_awaited(call, kwargs))
    client = call.owner()
    try:
        return getattr(client, call.name)(**kwargs)
    finally:
        _close(client)


async def _awaited(call: Call, kwargs: dict[str, Any]) -> Any:
    assert call.owner is not None
    async with call.owner() as client:
        return await getattr(client, call.name)(**kwargs)


def _close(made: Any) -> None:
    if isinstance(made, FluxSchnell):
        made.close()
    elif isinstance(made, AsyncFluxSchnell):
        asyncio.run(made.close())


def run_call(
    call: Call,
    kwargs: dict[str, Any],
    server: ReferenceServer,
    outside: OutsideAttempts,
    counted: Counted,
) -> str:
    """Call it; check the contract; return what became of it, for the summary."""
    server.faults.reset()
    outside.clear()
    counted.requests = 0
    try:
        made = _invoke(call, kwargs)
    except REFUSALS as refused:
        sent = server.faults.api_requests + server.faults.image_requests + counted.requests
        said = (call.label, repr(refused), sent, list(outside))
        assert sent == 0, said
        assert not outside, said
        return type(refused).__name__
    except NovitaError as error:
        return type(error).__name__
    except OSError as error:
        # A directory the system refuses is the system's OSError, as open() raises it.
        if call.name != "save":
            raise
        return f"OSError {error.errno}"
    _close(made)
    return "returned"


@pytest.mark.parametrize("label", sorted(CALLS))
@FUZZ
@given(data=st.data())
def test_any_arguments_raise_only_novita_errors_and_a_refusal_sends_nothing(
    label: str,
    data: st.DataObject,
    world: ReferenceServer,
    answered: Generation,
    tmp_path: Path,
    offline: OutsideAttempts,
    inputs: Inputs,
) -> None:
    call = CALLS[label]
    counted = Counted()
    drawn = data.draw(arguments(call, plausible(answered, tmp_path, counted, call.is_async)))
    outcome = run_call(call, drawn.kwargs, world, offline, counted)
    inputs.took(f"library {label}", outcome)


@pytest.mark.parametrize("label", sorted(CALLS))
def test_a_keyword_the_call_does_not_have_is_a_type_error_and_sends_nothing(
    label: str, world: ReferenceServer, offline: OutsideAttempts
) -> None:
    call = CALLS[label]
    with pytest.raises(TypeError, match="no_such_option"):
        _invoke(call, {"no_such_option": 1})
    assert world.faults.api_requests == world.faults.image_requests == 0
    assert not offline


# --- the cases issue 20 reports -------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["\ud800 x", "caf\udce9", "x\udfff"])
def test_a_prompt_with_a_lone_surrogate_is_a_validation_error_naming_the_field(
    prompt: str, world: ReferenceServer
) -> None:
    with FluxSchnell() as flux, pytest.raises(ValidationError) as raised:
        flux.generate(prompt)
    assert raised.value.field == "prompt"
    assert "surrogate" in str(raised.value)
    assert world.faults.api_requests == 0


@pytest.mark.parametrize("timeout", [1e10, 1e12, math.inf, httpx.Timeout(math.inf)])
def test_a_timeout_longer_than_a_socket_can_wait_is_no_limit(
    timeout: Any, world: ReferenceServer
) -> None:
    with FluxSchnell(timeout=timeout) as flux:
        assert flux.generate("a fox", width=64, height=64).images

    async def generate() -> None:
        async with AsyncFluxSchnell(timeout=timeout) as flux:
            assert (await flux.generate("a fox", width=64, height=64)).images

    asyncio.run(generate())


# --- found by this fuzz -----------------------------------------------------------------------


def _naive(image: Any) -> Any:
    return attrs.evolve(image, expires_at=image.expires_at.replace(tzinfo=None))


REFUSED_ARGUMENTS = [
    ("download", {"image": None}, "image"),
    ("download", {"image": {"url": "https://storage.example/0.png"}}, "image"),
    ("download", {"image": "naive"}, "image.expires_at"),
    ("download", {"image": "first", "max_bytes": None}, "max_bytes"),
    ("save", {"generation": None, "directory": "saved"}, "generation"),
    ("save", {"generation": "answered", "directory": 5}, "directory"),
    ("save", {"generation": "answered", "directory": "a\x00b"}, "directory"),
    ("save", {"generation": "answered", "directory": "saved", "max_bytes": 0}, "max_bytes"),
    ("save", {"generation": "answered", "directory": "saved", "metadata": [1]}, "metadata"),
    ("save", {"generation": "answered", "directory": "saved", "metadata": {1: 2}}, "metadata"),
    ("save", {"generation": "answered", "directory": "s", "metadata": {"x": object()}}, "metadata"),
    ("save", {"generation": "answered", "directory": "saved", "on_saved": 5}, "on_saved"),
    ("save", {"generation": "answered", "directory": "saved", "on_saved": "async"}, "on_saved"),
    ("generate_many", {"requests": 5}, "requests"),
    ("generate_many", {"requests": [{"prompt": "x"}], "on_result": "print"}, "on_result"),
    ("generate_many", {"requests": [{"prompt": "x"}], "concurrency": 10**9}, "concurrency"),
]


@pytest.mark.parametrize("client", [FluxSchnell, AsyncFluxSchnell])
@pytest.mark.parametrize(("method", "given", "field"), REFUSED_ARGUMENTS)
def test_an_argument_the_client_cannot_use_is_a_validation_error_before_anything_is_sent(
    client: type,
    method: str,
    given: dict[str, Any],
    field: str,
    world: ReferenceServer,
    answered: Generation,
) -> None:
    """Each of these raised an AttributeError or TypeError, some after the request had left;
    generate_many(concurrency=10**9) hung, opening a connection pool per eight requests; an
    async on_saved was called and never run (a RuntimeWarning, at best)."""
    stand_ins = {
        "async": an_async_callback,
        "answered": answered,
        "first": answered.images[0],
        "naive": _naive(answered.images[0]),
    }
    kwargs = {
        name: stand_ins.get(value, value) if isinstance(value, str) else value
        for name, value in given.items()
    }
    call = Call(client, method, getattr(client, method))
    with pytest.raises(ValidationError) as refused:
        _invoke(call, kwargs)
    assert refused.value.field == field
    assert world.faults.api_requests == world.faults.image_requests == 0


def test_the_sync_client_refuses_an_async_on_result_it_could_never_await(
    world: ReferenceServer,
) -> None:
    """Found by this fuzz (deep profile): FluxSchnell.generate_many called an async on_result,
    never ran it, and went on (a RuntimeWarning); AsyncFluxSchnell awaits it, as documented."""
    with FluxSchnell() as flux, pytest.raises(ValidationError) as refused:
        flux.generate_many([{"prompt": "x"}], on_result=an_async_callback)
    assert refused.value.field == "on_result"
    assert world.faults.api_requests == 0

    async def generate_many() -> None:
        async with AsyncFluxSchnell() as flux:
            seen = await flux.generate_many(
                [{"prompt": "x", "width": 64, "height": 64}], on_result=an_async_callback
            )
            assert seen[0].ok

    asyncio.run(generate_many())
