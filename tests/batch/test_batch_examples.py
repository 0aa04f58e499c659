"""Explicit examples for _batch (plan, pacer, engine, generate_many): each pins an exact value,
so a small change to the code fails."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from novita_flux import (
    APIConnectionError,
    AsyncFluxSchnell,
    BudgetExceededError,
    FluxSchnell,
    Generation,
    ValidationError,
    _batch,
)
from novita_flux._batch import (
    BatchResult,
    ImagePacer,
    PlannedRequest,
    check_concurrency,
    check_pace,
    plan_batch,
    run_async,
    run_sync,
    run_tasks,
    run_threads,
    total_cost,
)
from novita_flux._interrupts import answered
from tests.support import API_URL, KEY, Sleeps, error_body, success_body


def test_batch_result_defaults_and_ok() -> None:
    result = BatchResult(2, {"prompt": "x"})
    assert (result.index, result.request, result.generation, result.error) == (
        2, {"prompt": "x"}, None, None,
    )  # fmt: skip
    assert result.ok is True
    assert BatchResult(0, {}, error=ValueError("no")).ok is False


def test_plan_batch_records_each_request_its_body_cost_or_error() -> None:
    plan = plan_batch(
        [{"prompt": "a", "seed": 5}, "not a mapping", {"prompt": "b", "image_num": 3, "seed": 1}],
        images_per_minute=2,
    )
    assert [item.index for item in plan] == [0, 1, 2]
    assert plan[0].body == {
        "prompt": "a", "seed": 5, "steps": 4, "width": 1024, "height": 1024, "image_num": 1,
        "response_image_type": "png",
    }  # fmt: skip
    assert plan[0].cost == Decimal("0.003")
    assert plan[0].error is None
    assert plan[1].request == "not a mapping"
    assert (plan[1].body, plan[1].cost) == (None, Decimal(0))
    error = plan[1].error
    assert isinstance(error, ValidationError)
    assert (error.field, error.value, error.expected) == (
        "requests[1]", "not a mapping", "a mapping of request fields",
    )  # fmt: skip
    assert str(error) == "requests[1]: 'not a mapping' is not a mapping of request fields"
    pace = plan[2].error
    assert isinstance(pace, ValidationError)
    assert (pace.field, pace.value, pace.expected) == ("image_num", 3, "at most 2")
    assert str(pace) == "image_num: 3 can never be sent under images_per_minute=2"
    assert (plan[2].body, plan[2].cost) == (None, Decimal(0))
    assert total_cost(plan) == Decimal("0.003")


def test_planned_request_defaults() -> None:
    planned = PlannedRequest(0, {})
    assert (planned.body, planned.cost, planned.error) == (None, Decimal(0), None)


def test_check_pace_allows_exactly_the_limit_and_no_limit() -> None:
    assert check_pace({"image_num": 2}, 2, "x=") is None
    assert check_pace({"image_num": 4}, None, "x=") is None
    with pytest.raises(ValidationError) as raised:
        check_pace({"image_num": 3}, 2, "--images-per-minute ")
    assert str(raised.value) == "image_num: 3 can never be sent under --images-per-minute 2"


def test_plan_batch_budget_is_refused_over_and_allowed_at_the_total() -> None:
    requests = [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "width": 10}]
    assert len(plan_batch(requests, max_total_cost="0.006")) == 3
    with pytest.raises(BudgetExceededError) as raised:
        plan_batch(requests, max_total_cost=Decimal("0.0059"))
    assert raised.value.cost == Decimal("0.006")
    assert raised.value.budget == Decimal("0.0059")
    assert str(raised.value) == "estimated cost $0.006 of this batch exceeds the budget $0.0059"
    with pytest.raises(ValidationError) as bad:
        plan_batch(requests, max_total_cost="lots")
    assert bad.value.field == "max_total_cost"


def test_total_cost_counts_only_planned_bodies() -> None:
    plan = [
        PlannedRequest(0, {}, {"image_num": 1}, Decimal("0.5")),
        PlannedRequest(1, {}, None, Decimal("7")),
        PlannedRequest(2, {}, {"image_num": 1}, Decimal("0.25")),
    ]
    assert total_cost(plan) == Decimal("0.75")
    assert total_cost([]) == Decimal(0)


# --- the pacer ----------------------------------------------------------------------------------


def test_pacer_spaces_requests_by_their_images_share_of_the_window_plus_slack() -> None:
    pacer = ImagePacer(60)
    assert pacer.window == 60.0
    assert pacer.limit == 60
    assert pacer.ready_at(1, 5.0) == 5.0  # nothing released yet
    pacer.record(1, 5.0)
    assert pacer._next_free == pytest.approx(5.0 + 1.01)
    assert pacer.ready_at(1, 5.5) == pytest.approx(6.01)
    assert pacer.ready_at(1, 7.0) == 7.0
    pacer.record(3, 7.0)
    assert pacer._next_free == pytest.approx(7.0 + 3 * 1.01)
    assert list(pacer._released) == [(5.0, 1), (7.0, 3)]


def test_pacer_with_its_own_window() -> None:
    pacer = ImagePacer(4, window=10.0)
    pacer.record(2, 0.0)
    assert pacer._next_free == pytest.approx(2 * 10.0 / 4 * 1.01)


def test_pacer_with_a_limit_past_what_a_float_holds_spaces_nothing() -> None:
    """Found by the library fuzz: images_per_minute=10**400 raised OverflowError in a worker."""
    pacer = ImagePacer(10**400)
    pacer.record(3, 1.0)
    assert pacer._next_free == 1.0
    assert pacer.ready_at(1, 1.0) == 1.0


def test_pacer_sliding_window_waits_for_the_oldest_release_to_leave() -> None:
    pacer = ImagePacer(2)
    pacer.record(1, 0.0)  # next free at 30.3
    pacer.record(1, 30.3)  # next free at 60.6
    # 2 images at 60.6: the release at 0 has left the window, the one at 30.3 has not.
    assert pacer.ready_at(2, 60.6) == pytest.approx(90.3)
    assert list(pacer._released) == [(30.3, 1)]
    # 1 image fits beside the one still in the window.
    assert pacer.ready_at(1, 60.6) == pytest.approx(60.6)


def test_pacer_forgets_a_release_exactly_one_window_old() -> None:
    pacer = ImagePacer(1)
    pacer.record(1, 0.0)
    assert pacer.ready_at(1, 59.9) == pytest.approx(60.6)
    assert list(pacer._released) == [(0.0, 1)]
    assert pacer.ready_at(1, 60.0) == pytest.approx(60.6)
    assert list(pacer._released) == []


def test_pacer_counts_every_release_still_in_the_window() -> None:
    pacer = ImagePacer(3)
    pacer._next_free = float("-inf")
    pacer._released.extend([(0.0, 1), (1.0, 1), (2.0, 1)])
    assert pacer.ready_at(1, 10.0) == 60.0  # the first must leave
    assert pacer.ready_at(2, 10.0) == 61.0  # the first two must leave
    assert pacer.ready_at(3, 10.0) == 62.0
    pacer._released.clear()
    pacer._released.extend([(0.0, 1), (1.0, 1)])
    assert pacer.ready_at(1, 10.0) == 10.0  # 2 + 1 == the limit: fits


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_pacer_refuses_a_limit_below_one(limit: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        ImagePacer(limit)
    assert raised.value.field == "images_per_minute"
    assert str(raised.value) == f"images_per_minute: {limit!r} is not an integer >= 1"


def test_pacer_accepts_a_limit_of_one() -> None:
    assert ImagePacer(1).limit == 1


@pytest.mark.parametrize("value", [0, -3, False, 2.0, "4", 257, 10**9])
def test_check_concurrency_refuses_anything_but_an_integer_from_one_to_256(value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        check_concurrency(value)
    assert raised.value.field == "concurrency"
    assert str(raised.value) == f"concurrency: {value!r} is not an integer in [1, 256]"


def test_check_concurrency_returns_the_value() -> None:
    assert check_concurrency(1) == 1
    assert check_concurrency(256) == 256
    assert check_concurrency(64) == 64


# --- waiting for a slot, on a fake clock --------------------------------------------------------


class FakeClock:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def monotonic(self) -> float:
        return self.now


class FakeStop:
    """A stop event whose waits advance the fake clock (or stop the run at wait `stop_at`)."""

    def __init__(self, clock: FakeClock, stop_at: int | None = None) -> None:
        self.clock = clock
        self.stop_at = stop_at
        self.set_ = False

    def wait(self, seconds: float) -> bool:
        assert seconds > 0, "a wait for nothing"
        self.clock.waits.append(seconds)
        if self.stop_at is not None and len(self.clock.waits) >= self.stop_at:
            self.set_ = True
            return True
        self.clock.now += seconds
        return False

    def is_set(self) -> bool:
        return self.set_


def test_sync_wait_sleeps_until_the_slot_and_records_the_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_batch, "time", clock)
    pacer = ImagePacer(60)
    stop = FakeStop(clock)
    assert _batch._sync_wait(pacer, 1, stop) is True  # type: ignore[arg-type]
    assert clock.waits == []
    assert list(pacer._released) == [(100.0, 1)]
    assert _batch._sync_wait(pacer, 2, stop) is True  # type: ignore[arg-type]
    assert clock.waits == [pytest.approx(1.01)]
    assert list(pacer._released) == [(100.0, 1), (pytest.approx(101.01), 2)]
    pacer._next_free = clock.now  # ready exactly now: released without a wait
    assert _batch._sync_wait(pacer, 1, stop) is True  # type: ignore[arg-type]
    assert len(clock.waits) == 1


def test_sync_wait_gives_up_when_stopped_while_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_batch, "time", clock)
    pacer = ImagePacer(60)
    pacer.record(1, 100.0)
    assert _batch._sync_wait(pacer, 1, FakeStop(clock, stop_at=1)) is False  # type: ignore[arg-type]
    assert list(pacer._released) == [(100.0, 1)]


def test_sync_wait_gives_up_when_stopped_before_the_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_batch, "time", clock)
    pacer = ImagePacer(60)
    stop = FakeStop(clock)
    stop.set_ = True
    assert _batch._sync_wait(pacer, 1, stop) is False  # type: ignore[arg-type]
    assert list(pacer._released) == []


def _fake_wait_for(clock: FakeClock, stop_after: int | None = None) -> Any:
    async def wait_for(awaitable: Any, timeout: float) -> None:
        awaitable.close()
        assert timeout > 0, "a wait for nothing"
        clock.waits.append(timeout)
        if stop_after is not None and len(clock.waits) >= stop_after:
            return  # the stop event fired
        # The first wait wakes early (asyncio may): the slot must be checked again.
        clock.now += timeout / 2 if len(clock.waits) == 1 else timeout
        raise TimeoutError

    return wait_for


@pytest.mark.anyio
async def test_async_wait_rechecks_after_an_early_wake_and_records_the_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_batch, "time", clock)
    monkeypatch.setattr(asyncio, "wait_for", _fake_wait_for(clock))
    pacer = ImagePacer(60)
    pacer.record(1, 100.0)
    assert await _batch._async_wait(pacer, 2, asyncio.Event()) is True
    assert clock.waits == [pytest.approx(1.01), pytest.approx(0.505)]
    assert list(pacer._released) == [(100.0, 1), (pytest.approx(101.01), 2)]


@pytest.mark.anyio
async def test_async_wait_gives_up_when_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_batch, "time", clock)
    monkeypatch.setattr(asyncio, "wait_for", _fake_wait_for(clock, stop_after=1))
    pacer = ImagePacer(60)
    pacer.record(1, 100.0)
    assert await _batch._async_wait(pacer, 1, asyncio.Event()) is False
    assert list(pacer._released) == [(100.0, 1)]
    stopped = asyncio.Event()
    stopped.set()
    assert await _batch._async_wait(ImagePacer(60), 1, stopped) is False


@pytest.mark.anyio
async def test_async_wait_releases_at_once_when_the_slot_is_free(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(_batch, "time", clock)
    monkeypatch.setattr(asyncio, "wait_for", _fake_wait_for(clock))
    pacer = ImagePacer(60)
    assert await _batch._async_wait(pacer, 3, asyncio.Event()) is True
    pacer._next_free = 100.0  # ready exactly now: released without a wait
    assert await _batch._async_wait(pacer, 1, asyncio.Event()) is True
    assert clock.waits == []
    assert list(pacer._released) == [(100.0, 3), (100.0, 1)]


# --- the engine ---------------------------------------------------------------------------------


class Items:
    """An iterator that counts the calls made once it is exhausted (one per worker)."""

    def __init__(self, values: list[Any]) -> None:
        self.values = list(values)
        self.exhausted = 0

    def __iter__(self) -> Items:
        return self

    def __next__(self) -> Any:
        if self.values:
            return self.values.pop(0)
        self.exhausted += 1
        raise StopIteration


class RecordingPacer:
    """A pacer that is always ready and notes what it was asked."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.recorded: list[int] = []

    def ready_at(self, images: int, now: float) -> float:
        self.asked.append(images)
        return now

    def record(self, images: int, now: float) -> None:
        self.recorded.append(images)


def test_run_threads_of_no_items_does_nothing() -> None:
    done: list[Any] = []
    items = Items([])
    run_threads(items, [done.append], concurrency=3, pacer=None, images=lambda item: 1)
    assert done == []
    assert items.exhausted == 3  # one worker per unit of concurrency, each found nothing


def test_run_threads_runs_every_item_once_with_more_workers_than_items() -> None:
    done: list[Any] = []
    names: set[str] = set()

    def work(item: Any) -> None:
        names.add(threading.current_thread().name)
        done.append(item)

    pacer = RecordingPacer()
    run_threads(
        iter([1, 0, 2]), [work], concurrency=8, pacer=pacer,  # type: ignore[arg-type]
        images=lambda item: item,
    )  # fmt: skip
    assert sorted(done) == [0, 1, 2]
    assert sorted(pacer.recorded) == [1, 2]  # an item of 0 images is never paced
    assert sorted(pacer.asked) == [1, 2]
    assert all(name.startswith("novita-flux") for name in names)


def test_run_threads_paces_items_in_input_order_with_one_worker() -> None:
    pacer = RecordingPacer()
    run_threads(
        iter([3, 1, 2]), [lambda item: None], concurrency=1, pacer=pacer,  # type: ignore[arg-type]
        images=lambda item: item,
    )  # fmt: skip
    assert pacer.recorded == [3, 1, 2]


def test_run_threads_without_a_pacer_never_waits() -> None:
    done: list[Any] = []
    run_threads(iter([1, 2]), [done.append], concurrency=1, pacer=None, images=lambda item: 5)
    assert done == [1, 2]


def test_run_threads_takes_nothing_once_stopped_before_the_start() -> None:
    stop = threading.Event()
    stop.set()
    done: list[Any] = []
    items = Items([1, 2])
    run_threads(items, [done.append], concurrency=2, pacer=None, images=lambda i: 0, stop=stop)
    assert done == []
    assert items.values == [1, 2]


def test_run_threads_does_not_work_an_item_taken_just_as_the_run_stopped() -> None:
    stop = threading.Event()
    done: list[Any] = []

    def images(item: Any) -> int:
        stop.set()  # stopped after the item was taken, before its work
        return 0

    run_threads(iter([1, 2]), [done.append], concurrency=1, pacer=None, images=images, stop=stop)
    assert done == []


def test_run_threads_never_releases_an_item_whose_pacing_wait_was_stopped() -> None:
    stop = threading.Event()
    done: list[Any] = []

    class StoppingPacer(RecordingPacer):
        def ready_at(self, images: int, now: float) -> float:
            stop.set()
            return now

    pacer = StoppingPacer()
    run_threads(
        iter([1]), [done.append], concurrency=1, pacer=pacer,  # type: ignore[arg-type]
        images=lambda i: 1, stop=stop,
    )  # fmt: skip
    assert done == []
    assert pacer.recorded == []


def test_run_threads_stops_every_worker_at_once_and_raises_the_first_failure() -> None:
    stop = threading.Event()
    waited: list[bool] = []

    def patient(item: Any) -> None:  # lane 0: ends when the run is stopped
        waited.append(stop.wait(2.0))

    def failing(item: Any) -> None:  # lane 1
        raise ValueError(f"bad {item}")

    items = Items(list(range(10)))
    with pytest.raises(ValueError, match=r"^bad "):
        run_threads(
            items, [patient, failing], concurrency=2, pacer=None, images=lambda i: 0, stop=stop
        )
    assert waited == [True]  # stopped by the failing worker, not by the time-out
    assert len(items.values) == 8  # nothing taken after the failure


def test_run_threads_raises_a_failure_that_comes_after_the_other_workers_ran_out() -> None:
    """The run waits for the items in flight by counting them: taken 2, finished 1, and the
    last one fails after the other worker has found no more items. The count must be back at
    0 then, or the run would wait forever instead of raising."""
    second_taken, ran_out = threading.Event(), threading.Event()

    class Two(Items):
        def __next__(self) -> Any:
            if not self.values:
                ran_out.set()
            return super().__next__()

    def work(item: str) -> None:
        if item == "first":
            assert second_taken.wait(5)  # so that the other worker holds the second
        else:
            second_taken.set()
            assert ran_out.wait(5)
            raise ValueError("the last one in flight fails")

    outcome: list[BaseException] = []

    def run() -> None:
        try:
            items = Two(["first", "second"])
            run_threads(items, [work], concurrency=2, pacer=None, images=lambda item: 0)
        except ValueError as error:
            outcome.append(error)

    runner = threading.Thread(target=run, daemon=True)  # a hang would fail, not block, the test
    runner.start()
    runner.join(5)
    assert [str(error) for error in outcome] == ["the last one in flight fails"]


@pytest.mark.anyio
async def test_run_tasks_of_no_items_does_nothing() -> None:
    items = Items([])

    async def work(item: Any) -> None:
        raise AssertionError("never called")

    await run_tasks(items, [work], concurrency=4, pacer=None, images=lambda i: 1)
    assert items.exhausted == 4


@pytest.mark.anyio
async def test_run_tasks_runs_every_item_once_and_paces_only_items_with_images() -> None:
    done: list[Any] = []

    async def work(item: Any) -> None:
        await asyncio.sleep(0)
        done.append(item)

    pacer = RecordingPacer()
    await run_tasks(
        iter([2, 0, 1, 3]), [work], concurrency=9, pacer=pacer,  # type: ignore[arg-type]
        images=lambda item: item,
    )  # fmt: skip
    assert sorted(done) == [0, 1, 2, 3]
    assert pacer.recorded == [2, 1, 3]  # in input order, the item of 0 images skipped


@pytest.mark.anyio
async def test_run_tasks_without_a_pacer_never_waits() -> None:
    done: list[Any] = []

    async def work(item: Any) -> None:
        done.append(item)

    await run_tasks(iter([1, 2]), [work], concurrency=1, pacer=None, images=lambda item: 5)
    assert done == [1, 2]


@pytest.mark.anyio
async def test_run_tasks_takes_nothing_once_stopped_before_the_start() -> None:
    stop = asyncio.Event()
    stop.set()
    done: list[Any] = []

    async def work(item: Any) -> None:
        done.append(item)

    items = Items([1, 2])
    await run_tasks(items, [work], concurrency=2, pacer=None, images=lambda i: 0, stop=stop)
    assert done == []
    assert items.values == [1, 2]


@pytest.mark.anyio
async def test_run_tasks_does_not_work_an_item_taken_just_as_the_run_stopped() -> None:
    stop = asyncio.Event()
    done: list[Any] = []

    async def work(item: Any) -> None:
        done.append(item)

    def images(item: Any) -> int:
        stop.set()
        return 0

    await run_tasks(iter([1, 2]), [work], concurrency=1, pacer=None, images=images, stop=stop)
    assert done == []


@pytest.mark.anyio
async def test_run_tasks_never_releases_an_item_whose_pacing_wait_was_stopped() -> None:
    stop = asyncio.Event()
    done: list[Any] = []

    async def work(item: Any) -> None:
        done.append(item)

    class StoppingPacer(RecordingPacer):
        def ready_at(self, images: int, now: float) -> float:
            stop.set()
            return now

    await run_tasks(
        iter([1]), [work], concurrency=1, pacer=StoppingPacer(),  # type: ignore[arg-type]
        images=lambda i: 1, stop=stop,
    )  # fmt: skip
    assert done == []


@pytest.mark.anyio
async def test_run_tasks_stops_the_others_and_raises_the_failure_after_they_finish() -> None:
    stop = asyncio.Event()
    finished: list[str] = []

    async def patient(item: Any) -> None:
        await asyncio.wait_for(stop.wait(), 2.0)
        finished.append("patient")

    async def failing(item: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("broken")

    items = Items(list(range(10)))
    with pytest.raises(ValueError, match=r"^broken$"):
        await run_tasks(
            items, [patient, failing], concurrency=2, pacer=None, images=lambda i: 0, stop=stop
        )
    assert finished == ["patient"]  # finished before the failure was raised
    assert len(items.values) == 8


@pytest.mark.anyio
async def test_run_tasks_cancelled_from_outside_cancels_its_workers() -> None:
    stop = asyncio.Event()
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def forever(item: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    run = asyncio.ensure_future(
        run_tasks(iter([1, 2]), [forever], concurrency=2, pacer=None, images=lambda i: 0, stop=stop)
    )
    await started.wait()
    await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert stop.is_set()
    assert cancelled == [True, True]


# --- run_sync / run_async over a plan -----------------------------------------------------------


def _plan() -> list[PlannedRequest]:
    return [
        PlannedRequest(0, {"prompt": "a"}, {"image_num": 1, "prompt": "a"}, Decimal("0.1")),
        PlannedRequest(1, {"prompt": ""}, None, error=ValidationError("prompt", "", "x", "bad")),
        PlannedRequest(2, {"prompt": "fail"}, {"image_num": 2, "prompt": "fail"}, Decimal("0.2")),
    ]


def _fake_generation(body: dict[str, Any], cost: Decimal) -> Any:
    if body["prompt"] == "fail":
        raise RuntimeError("send failed")
    return Generation("t-" + body["prompt"], [], 1, body, cost)


def _check_results(results: list[BatchResult], plan: list[PlannedRequest]) -> None:
    assert [r.index for r in results] == [0, 1, 2]
    assert [r.request for r in results] == [item.request for item in plan]
    assert results[0].generation is not None
    assert (results[0].generation.task_id, results[0].generation.cost) == ("t-a", Decimal("0.1"))
    assert results[0].error is None
    assert results[1].generation is None
    assert results[1].error is plan[1].error
    assert results[2].generation is None
    assert str(results[2].error) == "send failed"


def test_run_sync_reports_every_item_in_its_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan()
    seen: list[int] = []
    pacer = RecordingPacer()
    results = run_sync(
        plan, [_fake_generation], concurrency=1, pacer=pacer,  # type: ignore[arg-type]
        on_result=lambda r: seen.append(r.index),
    )  # fmt: skip
    _check_results(results, plan)
    assert seen == [0, 1, 2]
    assert pacer.recorded == [1, 2]  # the invalid item is never paced


def test_run_sync_uses_no_more_workers_than_items(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    real = concurrent.futures.ThreadPoolExecutor

    def recording(workers: int, **options: Any) -> Any:
        sizes.append(workers)
        return real(workers, **options)

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", recording)
    assert run_sync([], [_fake_generation], concurrency=5, pacer=None, on_result=None) == []
    run_sync(_plan(), [_fake_generation], concurrency=5, pacer=None, on_result=None)
    run_sync(_plan(), [_fake_generation], concurrency=2, pacer=None, on_result=None)
    assert sizes == [1, 3, 2]


@pytest.mark.anyio
async def test_run_async_reports_every_item_in_its_slot_and_awaits_on_result() -> None:
    plan = _plan()
    seen: list[int] = []

    async def send(body: dict[str, Any], cost: Decimal, proceed: Any) -> Any:
        await asyncio.sleep(0)
        return _fake_generation(body, cost)

    async def on_result(result: BatchResult) -> None:
        await asyncio.sleep(0)
        seen.append(result.index)

    pacer = RecordingPacer()
    some_pacer: Any = pacer
    results = await run_async(plan, [send], concurrency=1, pacer=some_pacer, on_result=on_result)
    _check_results(results, plan)
    assert seen == [0, 1, 2]
    assert pacer.recorded == [1, 2]


@pytest.mark.anyio
async def test_run_async_awaits_a_future_returned_by_on_result() -> None:
    loop = asyncio.get_running_loop()
    seen: list[int] = []

    def on_result(result: BatchResult) -> asyncio.Future[None]:
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(lambda _: seen.append(result.index))
        loop.call_later(0.05, future.set_result, None)
        return future

    async def send(body: dict[str, Any], cost: Decimal, proceed: Any) -> Any:
        return _fake_generation(body, cost)

    await run_async(_plan()[:1], [send], concurrency=1, pacer=None, on_result=on_result)
    assert seen == [0]


@pytest.mark.anyio
async def test_run_async_uses_no_more_workers_than_items(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real = asyncio.ensure_future

    def counting(coroutine: Any, **options: Any) -> Any:
        started.append(getattr(coroutine, "__qualname__", ""))
        return real(coroutine, **options)

    async def send(body: dict[str, Any], cost: Decimal, proceed: Any) -> Any:
        return _fake_generation(body, cost)

    monkeypatch.setattr(asyncio, "ensure_future", counting)
    assert await run_async([], [send], concurrency=5, pacer=None, on_result=None) == []
    assert len([name for name in started if name.endswith("worker")]) == 1
    started.clear()
    await run_async(_plan(), [send], concurrency=8, pacer=None, on_result=None)
    assert len([name for name in started if name.endswith("worker")]) == 3


def test_run_sync_takes_no_item_while_on_result_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """on_result runs under the lock items are taken with, so that when it raises no worker
    can have taken another item meanwhile. Here the second worker starts only once on_result
    is running, and on_result waits a while for the send of the second item: it must never
    come, and the failure stops the run."""
    plan = [
        PlannedRequest(index, {"prompt": prompt}, {"image_num": 1, "prompt": prompt}, Decimal(1))
        for index, prompt in enumerate(["first", "second"])
    ]
    reporting, second_sent = threading.Event(), threading.Event()
    sent: list[str] = []

    def send(body: dict[str, Any], cost: Decimal) -> Generation:
        sent.append(body["prompt"])
        if body["prompt"] == "second":
            second_sent.set()
        return Generation("t-" + body["prompt"], [], 1, body, cost)

    def on_result(result: BatchResult) -> None:
        if result.index == 0:
            reporting.set()
            second_sent.wait(0.3)  # the time a free worker needs to take and send an item
            raise RuntimeError("disk full")

    submitted: list[Any] = []

    class LateSecondWorker(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            if submitted:  # every worker after the first starts while on_result runs
                assert reporting.wait(5)
            submitted.append(fn)
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", LateSecondWorker)
    with pytest.raises(RuntimeError, match=r"^disk full$"):
        run_sync(plan, [send], concurrency=2, pacer=None, on_result=on_result)
    assert sent == ["first"]
    assert len(submitted) == 2


@pytest.mark.anyio
async def test_run_async_cancelled_reports_what_the_sends_on_the_wire_heard_and_carries_it() -> (
    None
):
    """A cancelled batch lets the sends on the wire finish (AsyncFluxSchnell._send_heard): each
    re-raises the cancellation carrying the answer it heard, a Generation or an error, and that
    answer is reported like any other result; a send that never left carries nothing and
    reports nothing. The cancellation that reaches the caller carries every result so far."""
    prompts = ["answered", "paid", "refused", "never left"]
    plan = [
        PlannedRequest(index, {"prompt": prompt}, {"image_num": 1, "prompt": prompt}, Decimal(1))
        for index, prompt in enumerate(prompts)
    ]
    first = Generation("t-answered", [], 1, {"prompt": "answered"}, Decimal(1))
    paid = Generation("t-paid", [], 2, {"prompt": "paid"}, Decimal(1))
    refused = APIConnectionError("the API answered 500")
    on_the_wire: list[str] = []
    all_sent = asyncio.Event()

    async def send(body: dict[str, Any], cost: Decimal, proceed: Any) -> Generation:
        if body["prompt"] == "answered":
            return first
        on_the_wire.append(body["prompt"])
        if len(on_the_wire) == 3:
            all_sent.set()
        try:
            await asyncio.Event().wait()  # until the batch is cancelled
        except asyncio.CancelledError as stop:
            if body["prompt"] == "paid":
                answered(stop, generation=paid)
            elif body["prompt"] == "refused":
                answered(stop, error=refused)
            raise
        raise AssertionError("never answered")

    seen: list[BatchResult] = []
    run = asyncio.ensure_future(
        run_async(plan, [send], concurrency=4, pacer=None, on_result=seen.append)
    )
    await all_sent.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError) as raised:
        await run
    expected = [
        BatchResult(0, {"prompt": "answered"}, first),
        BatchResult(1, {"prompt": "paid"}, paid),
        BatchResult(2, {"prompt": "refused"}, error=refused),
    ]
    assert sorted(seen, key=lambda result: result.index) == expected
    assert raised.value.results == expected  # type: ignore[attr-defined]
    assert "the batch stopped after 3 result(s)" in raised.value.__notes__[-1]
    assert "paid: t-answered, t-paid;" in raised.value.__notes__[-1]


@pytest.mark.anyio
async def test_run_async_a_send_cancelled_on_its_own_stops_the_batch_as_a_cancellation() -> None:
    """A cancellation raised by one send (what it awaited was cancelled), not by the caller,
    carries no answer: nothing is reported for it, nothing more is sent, and the batch stops
    with that cancellation carrying the results so far."""
    plan = [
        PlannedRequest(index, {"prompt": prompt}, {"image_num": 1, "prompt": prompt}, Decimal(1))
        for index, prompt in enumerate(["first", "cancelled", "never sent"])
    ]
    sent: list[str] = []

    async def send(body: dict[str, Any], cost: Decimal, proceed: Any) -> Generation:
        sent.append(body["prompt"])
        if body["prompt"] == "cancelled":
            awaited = asyncio.get_running_loop().create_future()
            awaited.cancel()
            await awaited
        return Generation("t-" + body["prompt"], [], 1, body, cost)

    seen: list[BatchResult] = []
    with pytest.raises(asyncio.CancelledError) as raised:
        await run_async(plan, [send], concurrency=1, pacer=None, on_result=seen.append)
    expected = [
        BatchResult(0, {"prompt": "first"}, Generation("t-first", [], 1, plan[0].body, Decimal(1)))
    ]
    assert seen == expected
    assert raised.value.results == expected  # type: ignore[attr-defined]
    assert sent == ["first", "cancelled"]


def test_run_sync_interrupted_lets_the_send_on_the_wire_finish_and_carries_every_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C lands in the main thread, which waits on the workers' futures (here: a pool whose
    futures raise KeyboardInterrupt there once a send is on the wire). The send is let finish
    and reported, and the KeyboardInterrupt carries every result, the one in flight included."""
    plan = [
        PlannedRequest(index, {"prompt": prompt}, {"image_num": 1, "prompt": prompt}, Decimal(1))
        for index, prompt in enumerate(["first", "on the wire"])
    ]
    sending, interrupted = threading.Event(), threading.Event()

    def send(body: dict[str, Any], cost: Decimal) -> Generation:
        if body["prompt"] == "on the wire":
            sending.set()
            assert interrupted.wait(5)  # still on the wire when Ctrl-C lands
        return Generation("t-" + body["prompt"], [], 1, body, cost)

    class CtrlC(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            future = super().submit(fn, *args, **kwargs)

            def result(timeout: float | None = None) -> Any:
                assert sending.wait(5)
                interrupted.set()
                raise KeyboardInterrupt

            future.result = result
            return future

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", CtrlC)
    seen: list[BatchResult] = []
    with pytest.raises(KeyboardInterrupt) as raised:
        run_sync(plan, [send], concurrency=1, pacer=None, on_result=seen.append)
    expected = [
        BatchResult(0, {"prompt": "first"}, Generation("t-first", [], 1, plan[0].body, Decimal(1))),
        BatchResult(
            1,
            {"prompt": "on the wire"},
            Generation("t-on the wire", [], 1, plan[1].body, Decimal(1)),
        ),
    ]
    assert seen == expected
    assert raised.value.results == expected  # type: ignore[attr-defined]
    assert "paid: t-first, t-on the wire;" in raised.value.__notes__[-1]


# --- generate_many over mocked HTTP -------------------------------------------------------------


def answer(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if body["prompt"].startswith("fail"):
        return httpx.Response(400, json=error_body(400, "ILLEGAL_PROMPT", body["prompt"]))
    return httpx.Response(200, json=success_body(body["image_num"], task_id=body["prompt"]))


REQUESTS = [
    {"prompt": "p0", "seed": 1},
    {"prompt": "fail-1", "seed": 2},
    {"prompt": "p2", "width": 10},
    {"prompt": "p3", "image_num": 2, "seed": 3},
]


def _check_batch(results: list[BatchResult], sent: list[dict[str, Any]]) -> None:
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert [r.request for r in results] == REQUESTS
    assert [r.ok for r in results] == [True, False, False, True]
    first, last = results[0].generation, results[3].generation
    assert first is not None
    assert last is not None
    assert (first.task_id, first.seed, first.cost) == ("p0", 1, Decimal("0.003"))
    assert (last.task_id, len(last.images), last.cost) == ("p3", 2, Decimal("0.006"))
    assert type(results[1].error).__name__ == "BadRequestError"
    assert isinstance(results[2].error, ValidationError)
    assert results[2].error.field == "width"
    assert sorted(body["prompt"] for body in sent) == ["fail-1", "p0", "p3"]  # p2 never sent


def test_generate_many_reports_each_request_in_its_slot(sleeps: Sleeps) -> None:
    sent: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return answer(request)

    with respx.mock:
        respx.post(API_URL).mock(side_effect=record)
        results = FluxSchnell(api_key=KEY).generate_many(REQUESTS, concurrency=2)
    _check_batch(results, sent)


@pytest.mark.anyio
async def test_async_generate_many_reports_each_request_in_its_slot(sleeps: Sleeps) -> None:
    sent: list[dict[str, Any]] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return answer(request)

    with respx.mock:
        respx.post(API_URL).mock(side_effect=record)
        async with AsyncFluxSchnell(api_key=KEY) as flux:
            results = await flux.generate_many(REQUESTS, concurrency=3)
    _check_batch(results, sent)


def test_generate_many_over_budget_sends_nothing(sleeps: Sleeps) -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).mock(side_effect=answer)
        with pytest.raises(BudgetExceededError) as raised:
            FluxSchnell(api_key=KEY).generate_many(REQUESTS, max_total_cost=Decimal("0.0119"))
        assert route.call_count == 0
    assert (raised.value.cost, raised.value.budget) == (Decimal("0.012"), Decimal("0.0119"))
    assert str(raised.value) == "estimated cost $0.012 of this batch exceeds the budget $0.0119"


@pytest.mark.anyio
async def test_async_generate_many_over_budget_sends_nothing() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).mock(side_effect=answer)
        async with AsyncFluxSchnell(api_key=KEY) as flux:
            with pytest.raises(BudgetExceededError) as raised:
                await flux.generate_many(REQUESTS, max_total_cost="0.0119")
        assert route.call_count == 0
    assert raised.value.cost == Decimal("0.012")


def test_generate_many_refuses_an_on_result_it_could_not_call_before_sending_anything() -> None:
    async def unawaited(result: BatchResult) -> None:
        """FluxSchnell cannot await it: called, it would never run."""

    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).mock(side_effect=answer)
        with FluxSchnell(api_key=KEY) as flux:
            with pytest.raises(ValidationError) as not_callable:
                flux.generate_many(REQUESTS, on_result="print")
            with pytest.raises(ValidationError) as not_awaited:
                flux.generate_many(REQUESTS, on_result=unawaited)
        assert route.call_count == 0
    assert (not_callable.value.field, not_callable.value.value) == ("on_result", "print")
    assert str(not_callable.value) == "on_result: 'print' is not None or a callable"
    assert not_awaited.value.field == "on_result"


def test_generate_many_paces_by_images_per_minute(sleeps: Sleeps) -> None:
    stamps: list[tuple[str, float]] = []

    def record(request: httpx.Request) -> httpx.Response:
        stamps.append((json.loads(request.content)["prompt"], time.monotonic()))
        return answer(request)

    with respx.mock:
        respx.post(API_URL).mock(side_effect=record)
        results = FluxSchnell(api_key=KEY).generate_many(
            [{"prompt": "a", "image_num": 2}, {"prompt": "b"}, {"prompt": "c"}],
            concurrency=3,
            images_per_minute=2400,
        )
    assert all(result.ok for result in results)
    assert [prompt for prompt, _ in stamps] == ["a", "b", "c"]  # released in input order
    (_, a), (_, b), (_, c) = stamps
    assert b - a >= 2 * 60 / 2400 * 1.01 - 0.01  # 2 images buy 50.5 ms
    assert c - b >= 60 / 2400 * 1.01 - 0.01


def test_generate_many_refuses_a_request_over_the_pace_in_its_slot(sleeps: Sleeps) -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).mock(side_effect=answer)
        results = FluxSchnell(api_key=KEY).generate_many(
            [{"prompt": "a", "image_num": 2}, {"prompt": "b", "image_num": 3}],
            images_per_minute=2,
        )
    assert route.call_count == 1
    assert results[0].ok
    assert str(results[1].error) == "image_num: 3 can never be sent under images_per_minute=2"


# --- run_tasks: what is in flight when a worker fails, or the run is cancelled -----------------


@pytest.mark.anyio
async def test_run_tasks_raises_a_failure_only_once_the_other_sends_in_flight_have_finished() -> (
    None
):
    finished: list[str] = []

    async def work(item: str) -> None:
        if item == "fails":
            raise RuntimeError("disk full")
        await asyncio.sleep(0.02)  # a send already on the wire when the other worker fails
        finished.append(item)

    with pytest.raises(RuntimeError, match="disk full"):
        await run_tasks(
            iter(["in flight", "fails", "never taken"]), [work], concurrency=2, pacer=None,
            images=lambda item: 0,
        )  # fmt: skip
    assert finished == ["in flight"]  # finished (and recordable), not cancelled; nothing new


@pytest.mark.anyio
async def test_run_tasks_cancelled_from_outside_waits_for_every_worker_to_clean_up() -> None:
    started = asyncio.Event()
    cleaned: list[int] = []

    async def work(item: int) -> None:
        try:
            started.set()
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.01 * item)  # each worker's cleanup takes its own time
            cleaned.append(item)

    run = asyncio.ensure_future(
        run_tasks(iter([1, 2]), [work], concurrency=2, pacer=None, images=lambda item: 0)
    )
    await started.wait()
    await asyncio.sleep(0)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(cleaned) == [1, 2]


def test_total_cost_is_a_decimal_even_with_nothing_to_send() -> None:
    assert type(total_cost([])) is Decimal
    assert type(total_cost([PlannedRequest(0, {"prompt": 1})])) is Decimal  # invalid: no body
