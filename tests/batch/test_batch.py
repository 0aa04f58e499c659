"""generate_many: planned and priced up front, paced, isolated failures, input order."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import httpx
import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from novita_flux import (
    AsyncFluxSchnell,
    BudgetExceededError,
    FluxSchnell,
    InternalServerError,
    ValidationError,
    estimate_cost,
)
from novita_flux._batch import WINDOW_SECONDS, ImagePacer
from novita_flux._constants import LANE_CONNECTIONS, PACING_SLACK
from novita_flux._request import field_schema
from tests.support import API_URL, KEY, Sleeps, error_body, success_body

MAX_IMAGES = field_schema("image_num")["maximum"]


def respond_by_prompt(request: httpx.Request) -> httpx.Response:
    """Echo the prompt in the task id; prompts starting with 'fail' get a 400."""
    body = json.loads(request.content)
    if body["prompt"].startswith("fail"):
        return httpx.Response(400, json=error_body(400, "ILLEGAL_PROMPT", body["prompt"]))
    return httpx.Response(200, json=success_body(body["image_num"], task_id=body["prompt"]))


# --- the pacer ----------------------------------------------------------------------------------


def release_all(pacer: ImagePacer, sizes: list[int]) -> list[float]:
    """Release each request as early as the pacer allows, on a simulated clock."""
    now, times = 0.0, []
    for images in sizes:
        now = pacer.ready_at(images, now)
        pacer.record(images, now)
        times.append(now)
    return times


@given(
    limit=st.integers(MAX_IMAGES, 600),
    sizes=st.lists(st.integers(1, MAX_IMAGES), min_size=1, max_size=200),
)
def test_no_rolling_window_carries_more_images_than_the_limit(limit: int, sizes: list[int]) -> None:
    times = release_all(ImagePacer(limit), sizes)
    for start in times:
        in_window = sum(n for t, n in zip(times, sizes, strict=True) if start <= t < start + 60)
        assert in_window <= limit


@given(limit=st.integers(1, 600), count=st.integers(2, 300))
def test_a_saturated_pacer_releases_at_the_limit_rate(limit: int, count: int) -> None:
    times = release_all(ImagePacer(limit), [1] * count)
    rate = (count - 1) / (times[-1] - times[0]) * WINDOW_SECONDS
    assert limit / PACING_SLACK == pytest.approx(rate)


def test_pacer_refuses_a_nonsense_limit() -> None:
    with pytest.raises(ValidationError, match="images_per_minute"):
        ImagePacer(0)


# --- planning -----------------------------------------------------------------------------------


def test_the_batch_is_refused_up_front_when_its_total_exceeds_the_budget() -> None:
    requests = [{"prompt": "a", "width": 1024, "height": 1024}] * 3  # $0.003 each
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).mock(side_effect=respond_by_prompt)
        with pytest.raises(BudgetExceededError) as raised:
            FluxSchnell(api_key=KEY).generate_many(requests, max_total_cost="0.0089")
        assert route.call_count == 0
        FluxSchnell(api_key=KEY).generate_many(requests, max_total_cost="0.009")
        assert route.call_count == 3
    assert raised.value.cost == 3 * estimate_cost(1024, 1024, 4)


def test_one_failure_never_loses_the_others_and_order_is_kept(sleeps: Sleeps) -> None:
    requests = [
        {"prompt": "p0"},
        {"prompt": "fail-1"},
        {"prompt": "p2", "width": 10},  # invalid: never sent
        {"prompt": "p3", "nonsense": 1},  # unknown field: never sent
        "not a mapping",
        {"prompt": "p5", "image_num": 2},
    ]
    with respx.mock:
        route = respx.post(API_URL).mock(side_effect=respond_by_prompt)
        results = FluxSchnell(api_key=KEY).generate_many(requests, concurrency=3)  # type: ignore[list-item]
    assert [r.index for r in results] == list(range(6))
    assert [r.ok for r in results] == [True, False, False, False, False, True]
    assert results[0].generation is not None
    assert results[0].generation.task_id == "p0"
    assert results[1].error is not None
    assert type(results[1].error).__name__ == "BadRequestError"
    assert isinstance(results[2].error, ValidationError)
    assert results[2].error.field == "width"
    assert isinstance(results[3].error, ValidationError)
    assert results[3].error.field == "nonsense"
    assert isinstance(results[4].error, ValidationError)
    assert results[5].generation is not None
    assert len(results[5].generation.images) == 2
    assert route.call_count == 3


def test_an_image_num_above_the_pace_can_never_be_sent_and_is_reported() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.post(API_URL).mock(side_effect=respond_by_prompt)
        (result,) = FluxSchnell(api_key=KEY).generate_many(
            [{"prompt": "x", "image_num": 3}], images_per_minute=2
        )
    assert isinstance(result.error, ValidationError)
    assert "images_per_minute=2" in str(result.error)


# --- running ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_batch_keeps_at_most_concurrency_requests_in_flight() -> None:
    in_flight = peak = 0

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return respond_by_prompt(request)

    requests = [{"prompt": f"p{i}"} for i in range(20)]
    with respx.mock:
        respx.post(API_URL).mock(side_effect=slow)
        async with AsyncFluxSchnell(api_key=KEY) as flux:
            results = await flux.generate_many(requests, concurrency=5)
    assert peak == 5
    assert [r.generation.task_id for r in results if r.generation] == [f"p{i}" for i in range(20)]


@pytest.mark.anyio
async def test_async_on_result_sees_every_result_as_it_finishes(sleeps: Sleeps) -> None:
    seen: list[int] = []

    async def record(result: object) -> None:
        seen.append(result.index)  # type: ignore[attr-defined]

    with respx.mock:
        respx.post(API_URL).mock(side_effect=respond_by_prompt)
        async with AsyncFluxSchnell(api_key=KEY) as flux:
            await flux.generate_many([{"prompt": "a"}, {"prompt": "fail"}], on_result=record)
    assert sorted(seen) == [0, 1]


def test_pacing_spreads_releases_in_real_time() -> None:
    sent: list[float] = []

    def stamp(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return respond_by_prompt(request)

    with respx.mock:
        respx.post(API_URL).mock(side_effect=stamp)
        start = time.monotonic()
        FluxSchnell(api_key=KEY).generate_many(
            [{"prompt": f"p{i}"} for i in range(4)], concurrency=4, images_per_minute=1200
        )
    # The k-th release is at least k x 50 ms after the start, and a send never precedes its
    # release. (Gaps between sends are no measure: a thread late to send after one release
    # shortens the next gap, on a loaded machine by more than any jitter allowance.)
    assert len(sent) == 4
    for k, moment in enumerate(sorted(sent)):
        assert moment - start >= k * 60 / 1200, (k, moment - start)


def test_retries_inside_a_batch_follow_the_policy(sleeps: Sleeps) -> None:
    with respx.mock:
        route = respx.post(API_URL)
        route.side_effect = [
            httpx.Response(429, json=error_body(429, "RATE_LIMIT_EXCEEDED")),
            httpx.Response(200, json=success_body()),
        ]
        (result,) = FluxSchnell(api_key=KEY).generate_many([{"prompt": "x"}])
    assert result.ok
    assert route.call_count == 2
    with respx.mock:
        respx.post(API_URL).respond(500, json=error_body(500, "TASK_FAILED"))
        (result,) = FluxSchnell(api_key=KEY).generate_many([{"prompt": "x"}], max_retries=0)
    assert isinstance(result.error, InternalServerError)


def test_a_failing_on_result_stops_new_requests_and_is_raised() -> None:
    def explode(result: object) -> None:
        raise RuntimeError("disk full")

    with respx.mock:
        route = respx.post(API_URL).mock(side_effect=respond_by_prompt)
        with pytest.raises(RuntimeError, match="disk full"):
            FluxSchnell(api_key=KEY).generate_many(
                [{"prompt": f"p{i}"} for i in range(5)], concurrency=1, on_result=explode
            )
    assert route.call_count == 1


def test_a_wide_batch_spreads_over_pools_it_opens_and_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[httpx.Client] = []
    original = FluxSchnell._new_http

    def recording(self: FluxSchnell) -> httpx.Client:
        opened.append(original(self))
        return opened[-1]

    monkeypatch.setattr(FluxSchnell, "_new_http", recording)
    flux = FluxSchnell(api_key=KEY)
    with respx.mock:
        respx.post(API_URL).mock(side_effect=respond_by_prompt)
        results = flux.generate_many([{"prompt": f"p{i}"} for i in range(40)], concurrency=40)
    assert all(result.ok for result in results)
    lanes = math.ceil(40 / LANE_CONNECTIONS)
    assert lanes > 1
    assert len(opened) == lanes  # the client's own pool, and one more per extra lane ...
    assert [client.is_closed for client in opened] == [False] + [True] * (lanes - 1)  # ... closed


def test_an_injected_client_carries_the_whole_batch() -> None:
    http = httpx.Client()
    flux = FluxSchnell(api_key=KEY, http_client=http)
    assert flux.lanes(64) == [flux]


# --- a failing on_result stops everything, deterministically ------------------------------------


class LateSends:
    """A respx side effect that notes every send made after on_result has raised."""

    def __init__(self) -> None:
        self.raised = threading.Event()
        self.late = 0
        self.sent = 0
        self.results = 0
        self.returned = False  # set by the test once generate_many has raised
        self.results_after_return = 0

    def respond(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        self.late += self.raised.is_set()
        return respond_by_prompt(request)

    def on_result(self, result: object) -> None:
        self.results += 1
        self.results_after_return += self.returned
        if self.results == 3:  # only the third result: the other workers are still going
            self.raised.set()
            raise RuntimeError("disk full")


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_a_failing_on_result_stops_new_sends_at_once_in_the_sync_client(concurrency: int) -> None:
    for _ in range(5):  # the same every time, not most times
        sends = LateSends()
        with respx.mock:
            respx.post(API_URL).mock(side_effect=sends.respond)
            with pytest.raises(RuntimeError, match="disk full"):
                FluxSchnell(api_key=KEY).generate_many(
                    [{"prompt": f"p{i}"} for i in range(40)],
                    concurrency=concurrency,
                    on_result=sends.on_result,
                )
        # No worker takes an item once on_result has raised: the results are reported under
        # the lock items are taken with. A worker that took its item just before may still be
        # on its way to the network (slow under load or a tracer): at most one such send per
        # other worker, and none with one worker; and never more than the three reported
        # plus one in flight per other worker.
        assert sends.late <= concurrency - 1
        assert sends.sent < 3 + concurrency


@pytest.mark.parametrize("concurrency", [1, 3, 8])
@pytest.mark.anyio
async def test_a_failing_on_result_stops_the_async_batch_and_nothing_runs_after_it(
    concurrency: int,
) -> None:
    for _ in range(5):
        sends = LateSends()

        async def respond(request: httpx.Request, sends: LateSends = sends) -> httpx.Response:
            response = sends.respond(request)  # counted as it arrives
            await asyncio.sleep(0.001)  # then on the wire a while
            return response

        with respx.mock:
            respx.post(API_URL).mock(side_effect=respond)
            async with AsyncFluxSchnell(api_key=KEY) as flux:
                with pytest.raises(RuntimeError, match="disk full"):
                    await flux.generate_many(
                        [{"prompt": f"p{i}"} for i in range(40)],
                        concurrency=concurrency,
                        on_result=sends.on_result,
                    )
                sends.returned = True
                sent = sends.sent
                await asyncio.sleep(0.05)  # workers left running in the background would send
        assert sends.sent == sent
        assert sends.late == 0
        assert sends.results_after_return == 0  # nothing finished behind the caller's back
        assert [task for task in asyncio.all_tasks() if "worker" in repr(task)] == []


@pytest.mark.anyio
async def test_async_pacing_is_strict_and_stoppable(sleeps: Sleeps) -> None:
    sent: list[float] = []

    async def stamp(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return respond_by_prompt(request)

    with respx.mock:
        respx.post(API_URL).mock(side_effect=stamp)
        async with AsyncFluxSchnell(api_key=KEY) as flux:
            start = time.monotonic()
            results = await flux.generate_many(
                [{"prompt": f"p{i}"} for i in range(4)], concurrency=4, images_per_minute=1200
            )
    assert all(result.ok for result in results)
    # As in the threaded test: the k-th send is never before k x 50 ms from the start.
    assert len(sent) == 4
    for k, moment in enumerate(sorted(sent)):
        assert moment - start >= k * 60 / 1200, (k, moment - start)


@pytest.mark.anyio
async def test_async_batch_reports_invalid_requests_and_failures_in_order(sleeps: Sleeps) -> None:
    requests = [{"prompt": "p0"}, {"prompt": "fail-1"}, {"prompt": "p2", "width": 10}]
    with respx.mock:
        route = respx.post(API_URL).mock(side_effect=respond_by_prompt)
        async with AsyncFluxSchnell(api_key=KEY) as flux:
            results = await flux.generate_many(requests, concurrency=2)
    assert [result.request for result in results] == requests
    assert [result.ok for result in results] == [True, False, False]
    assert type(results[1].error).__name__ == "BadRequestError"
    assert isinstance(results[2].error, ValidationError)
    assert route.call_count == 2
