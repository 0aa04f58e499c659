"""The library stopped at every await: `generate`, `save` and `generate_many`, cancelled at each
step of each of their tasks, in the four ways a caller cancels (tests/faults/stepping.py); the
sync clients interrupted by Ctrl-C at every named step; and `on_result` raising at every result.

The rule, as README says it: a call stopped after its request may have reached the API waits for
the answer (bounded by its timeout), and the exception that stops it carries what was paid for
(`.generation`, `.error`; a batch's `.results`, its requests in flight reported through
`on_result` first); nothing new is sent once the stop has reached the call; a save stops at
once (a download costs nothing) and says which files it wrote and which links are left."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from novita_flux import AsyncFluxSchnell, BatchResult, FluxSchnell, Generation
from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES, incomplete, sniff
from novita_flux.testing import ReferenceServer
from tests.faults.hooks import census, installed
from tests.faults.invariant import Delivered, Run, Window, violations
from tests.faults.stepping import FORMS, Steps, run_struck

pytestmark = pytest.mark.slow

MANY = [
    {"prompt": f"cancel {number}", "width": 64, "height": 64, "steps": 1, "seed": 40 + number}
    for number in range(3)
]
ONE = {"prompt": "cancel one", "width": 64, "height": 64, "steps": 1, "seed": 50, "image_num": 2}
TIMEOUT = 10_000.0  # the exchange's own bound: far beyond any clock jump of the tests
STOPS = (asyncio.CancelledError, TimeoutError, KeyboardInterrupt)


def _stops(error: BaseException | None) -> Iterator[BaseException]:
    """The exception and its causes: under wait_for and timeout, the CancelledError that
    carries what was paid is the TimeoutError's cause."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _said(error: BaseException | None, name: str) -> Any:
    return next((getattr(e, name) for e in _stops(error) if hasattr(e, name)), None)


@pytest.fixture(scope="module")
def paid(server: ReferenceServer) -> Generation:
    """A generation to save (saving costs nothing, so one is enough for every run)."""
    with FluxSchnell(api_key=server.api_key, base_url=server.url) as flux:
        return flux.generate(**ONE)


def _async_calls(
    paid: Generation, out: Path, seen: list[BatchResult]
) -> dict[str, Callable[[AsyncFluxSchnell], Awaitable[Any]]]:
    return {
        "generate": lambda flux: flux.generate(**ONE),
        "generate_many": lambda flux: flux.generate_many(
            MANY, concurrency=2, on_result=seen.append
        ),
        "save": lambda flux: flux.save(paid, out, metadata=True),
    }


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", ["generate", "generate_many", "save"])
def test_a_call_cancelled_at_any_await_loses_nothing_it_paid_for_and_sends_nothing_new(
    name: str, form: str, server: ReferenceServer, paid: Generation, tmp_path: Path
) -> None:
    steps = Steps()
    seen: list[BatchResult] = []

    def client() -> AsyncFluxSchnell:
        return AsyncFluxSchnell(api_key=server.api_key, base_url=server.url, timeout=TIMEOUT)

    call = _async_calls(paid, tmp_path / "clean", seen)[name]
    _, error = run_struck(form, client, call, None, steps)
    assert error is None, error
    total = steps.count
    assert total > 3, "the call never waited: nothing to strike"
    struck = 0
    for at in range(1, total + 2):  # one past the end: a stop that comes too late is harmless
        seen.clear()
        out = tmp_path / f"at-{at}"
        mark = Window.mark(server)
        sending: list[int] = []

        def note(point: str, sending: list[int] = sending) -> None:
            if point == "api.sending":
                sending.append(steps.count)

        with installed(note):
            call = _async_calls(paid, out, seen)[name]
            returned, error = run_struck(form, client, call, at, steps)
        window = Window.since(server, mark)
        where = f"{name} stopped by {form} at step {at} of {total}: {error!r}"
        if error is not None:
            struck += 1
            assert isinstance(error, STOPS), where
            if steps.cancel_seen_at is None:  # stopped before it ever ran
                assert sending == [], where
            late = [step for step in sending if step > (steps.cancel_seen_at or 0)]
            assert late == [], f"sent after the stop reached the call: {where}"
        if name == "save":
            _check_save(server, paid, out, returned, error, window, where)
            continue
        delivered = Delivered(returned=tuple(returned or ()) if name != "generate" else
                              (returned,), reported=tuple(seen), raised=error)  # fmt: skip
        assert violations([Run((), window)], delivered=[delivered], allowed=1) == [], where
        if name == "generate_many" and error is not None:
            reported = {r.generation.task_id for r in seen if r.generation is not None}
            billed = {task_id for task_id, _ in window.billed}
            heard = billed & window.delivered
            assert heard <= reported, f"a send in flight was not reported: {where}"
    assert struck > 0, "no strike ever stopped the call"


def _check_save(
    server: ReferenceServer,
    paid: Generation,
    out: Path,
    returned: Any,
    error: BaseException | None,
    window: Window,
    where: str,
) -> None:
    assert window.arrived == (), where  # a save never calls the API
    assert not list(out.glob(".novita-*.part")) if out.exists() else True, where
    images = sorted(out.glob("*.png")) if out.exists() else []
    assert all(_whole(path) for path in images), f"a saved file is not whole: {where}"
    if error is None:
        assert len(returned) == len(paid.images), where
        return
    saved = _said(error, "saved")
    unsaved = _said(error, "unsaved")
    if saved is None and unsaved is None and not images:  # stopped before it began
        return
    assert saved is not None, f"the stop does not say what was saved: {where}"
    assert unsaved is not None, f"the stop does not say what is left: {where}"
    assert len(saved) + len(unsaved) == len(paid.images), where
    with FluxSchnell(
        api_key=server.api_key, base_url=server.url
    ) as flux:  # what is left is still reachable: saving again completes it
        again = flux.save(paid, out, metadata=True)
    assert len(again) == len(paid.images), where


def _whole(path: Path) -> bool:
    data = path.read_bytes()
    kind = sniff(data[:HEAD_BYTES])
    return (
        kind is not None
        and incomplete(kind, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data)) is None
    )


def _sync_calls(
    server: ReferenceServer, paid: Generation, out: Path, seen: list[BatchResult]
) -> dict[str, Callable[[], Any]]:
    def client() -> FluxSchnell:
        return FluxSchnell(api_key=server.api_key, base_url=server.url, timeout=TIMEOUT)

    def generate() -> Generation:
        with client() as flux:
            return flux.generate(**ONE)

    def generate_many() -> list[BatchResult]:
        with client() as flux:
            return flux.generate_many(MANY, concurrency=2, on_result=seen.append)

    def save() -> list[Path]:
        with client() as flux:
            return flux.save(paid, out, metadata=True)

    return {"generate": generate, "generate_many": generate_many, "save": save}


@pytest.mark.parametrize("name", ["generate", "generate_many", "save"])
def test_ctrl_c_at_any_step_of_a_sync_call_loses_nothing_it_paid_for(
    name: str, server: ReferenceServer, paid: Generation, tmp_path: Path
) -> None:
    seen: list[BatchResult] = []
    with census() as counts:
        _sync_calls(server, paid, tmp_path / "clean", seen)[name]()
    assert counts, "the call reached no named step"
    for point, times in sorted(counts.items()):
        for nth in range(1, times + 1):
            seen.clear()
            out = tmp_path / f"{point}-{nth}"
            reached = 0

            def ctrl_c(name_: str, point: str = point, nth: int = nth) -> None:
                nonlocal reached
                if name_ == point:
                    reached += 1
                    if reached == nth:
                        _thread.interrupt_main()  # as a real Ctrl-C: in the main thread

            mark = Window.mark(server)
            returned: Any = None
            error: BaseException | None = None
            with installed(ctrl_c):
                try:
                    returned = _sync_calls(server, paid, out, seen)[name]()
                    _absorb_a_late_interrupt()
                except KeyboardInterrupt as stop:
                    error = stop
            window = Window.since(server, mark)
            where = (
                f"{name} interrupted at {point}#{nth}: {error!r} "
                + repr([b["prompt"] for b in window.arrived])
                + repr(getattr(error, "__notes__", None))
            )
            if name == "save":
                _check_save(server, paid, out, returned, error, window, where)
                continue
            delivered = Delivered(returned=tuple(returned or ()) if name != "generate" else
                                  (returned,), reported=tuple(seen), raised=error)  # fmt: skip
            assert violations([Run((), window)], delivered=[delivered], allowed=1) == [], where


def _absorb_a_late_interrupt() -> None:
    """A Ctrl-C that lands after the call returned stops nothing of it: let it land here, and
    not in pytest (it lands at once in practice: the call waits for its threads)."""
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(0.005)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_on_result_raising_at_any_result_stops_the_batch_and_reports_what_was_in_flight(
    flavour: str, server: ReferenceServer
) -> None:
    class Enough(Exception):
        pass

    for nth in range(1, len(MANY) + 1):
        seen: list[BatchResult] = []

        def on_result(result: BatchResult, nth: int = nth, seen: list[BatchResult] = seen) -> None:
            seen.append(result)
            if len(seen) == nth:
                raise Enough(f"at result {nth}")

        def run_batch(on_result: Callable[[BatchResult], None] = on_result) -> None:
            if flavour == "sync":
                with FluxSchnell(api_key=server.api_key, base_url=server.url) as flux:
                    flux.generate_many(MANY, concurrency=2, on_result=on_result)
                return

            async def run() -> None:
                async with AsyncFluxSchnell(api_key=server.api_key, base_url=server.url) as flux:
                    await flux.generate_many(MANY, concurrency=2, on_result=on_result)

            asyncio.run(run())

        mark = Window.mark(server)
        with pytest.raises(Enough) as raised:
            run_batch()
        window = Window.since(server, mark)
        delivered = Delivered(reported=tuple(seen), raised=raised.value)
        assert violations([Run((), window)], delivered=[delivered], allowed=1) == [], nth
        reported = {r.generation.task_id for r in seen if r.generation is not None}
        assert {task_id for task_id, _ in window.billed} <= reported, nth
        assert len(window.arrived) <= nth + 1, "sent more after on_result raised than was in flight"
