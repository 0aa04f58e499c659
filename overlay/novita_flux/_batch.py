"""Many generations at once: planned and priced up front, paced to the API's image rate,
run with bounded concurrency, and reported one result per request in input order.

Workers are spread over `lanes` (one send function per client): worker n uses lane n % lanes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from novita_flux._config import check_count
from novita_flux._constants import PACING_SLACK
from novita_flux._errors import NovitaError, ValidationError
from novita_flux._models import Generation
from novita_flux._request import as_budget, check_budget, prepare_request
from novita_flux._schema import show

WINDOW_SECONDS = 60.0


@attrs.frozen
class BatchResult:
    """The outcome of one request of a batch: its Generation, or the exception it raised."""

    index: int
    request: Mapping[str, Any]
    generation: Generation | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen
class PlannedRequest:
    """A request checked and priced before the batch starts (or the error that stops it)."""

    index: int
    request: Mapping[str, Any]
    body: dict[str, Any] | None = None
    cost: Decimal = Decimal(0)
    error: NovitaError | None = None


def plan_batch(
    requests: Iterable[Mapping[str, Any]],
    *,
    images_per_minute: int | None = None,
    max_total_cost: Decimal | float | int | str | None = None,
) -> list[PlannedRequest]:
    """Check and price every request; refuse the whole batch if it would cost too much."""
    plan = []
    for index, request in enumerate(requests):
        try:
            if not isinstance(request, Mapping):
                raise ValidationError(
                    f"requests[{index}]",
                    request,
                    "a mapping of request fields",
                    f"requests[{index}]: {show(request)} is not a mapping of request fields",
                )
            body, cost = prepare_request(request)
            if images_per_minute is not None and body["image_num"] > images_per_minute:
                raise ValidationError(
                    "image_num",
                    body["image_num"],
                    f"at most images_per_minute={images_per_minute}",
                    f"image_num: {body['image_num']} can never be sent under "
                    f"images_per_minute={images_per_minute}",
                )
        except NovitaError as error:
            plan.append(PlannedRequest(index, request, error=error))
        else:
            plan.append(PlannedRequest(index, request, body, cost))
    if max_total_cost is not None:
        check_budget(total_cost(plan), as_budget(max_total_cost, "max_total_cost"), "batch")
    return plan


def total_cost(plan: Iterable[PlannedRequest]) -> Decimal:
    return sum((item.cost for item in plan if item.body is not None), Decimal(0))


class ImagePacer:
    """When the next request may go so that no rolling window carries more than `limit` images.

    Requests are spaced evenly (n images buy n * window / limit seconds, plus PACING_SLACK)
    rather than sent in a burst, and a sliding-window check keeps the promise strict when image
    counts differ.
    Pure bookkeeping: callers pass the clock and do the waiting.
    """

    def __init__(self, limit: int, window: float = WINDOW_SECONDS) -> None:
        self.limit = check_count("images_per_minute", limit, 1)
        self.window = window
        self._released: deque[tuple[float, int]] = deque()
        self._next_free = float("-inf")

    def ready_at(self, images: int, now: float) -> float:
        """The earliest time (on the caller's clock, never before `now`) at which a request for
        `images` images may be released. An absolute time, not a delay: `now + (ready - now)`
        can round below `ready`, and the promise is strict."""
        while self._released and self._released[0][0] <= now - self.window:
            self._released.popleft()
        ready = max(now, self._next_free)
        in_window = sum(count for _, count in self._released)
        for released_at, count in self._released:
            if in_window + images <= self.limit:
                break
            in_window -= count
            ready = max(ready, released_at + self.window)
        return ready

    def record(self, images: int, now: float) -> None:
        self._released.append((now, images))
        self._next_free = now + images * self.window / self.limit * PACING_SLACK


OnResult = Callable[[BatchResult], Any]


def check_concurrency(concurrency: int) -> int:
    return check_count("concurrency", concurrency, 1)


async def run_async(
    plan: list[PlannedRequest],
    lanes: Sequence[Callable[[dict[str, Any], Decimal], Awaitable[Generation]]],
    *,
    concurrency: int,
    pacer: ImagePacer | None,
    on_result: OnResult | None,
) -> list[BatchResult]:
    import asyncio  # here, not at the top: `import novita_flux` stays as light as httpx

    results: list[BatchResult | None] = [None] * len(plan)
    pending = iter(plan)
    gate = asyncio.Lock()

    async def worker(send: Callable[[dict[str, Any], Decimal], Awaitable[Generation]]) -> None:
        for item in pending:
            if item.body is None:
                result = BatchResult(item.index, item.request, error=item.error)
            else:
                if pacer is not None:
                    async with gate:  # one waiter at a time keeps releases in input order
                        await _async_wait(pacer, item.body["image_num"])
                try:
                    generation = await send(item.body, item.cost)
                except Exception as error:  # one failure must never lose the others
                    result = BatchResult(item.index, item.request, error=error)
                else:
                    result = BatchResult(item.index, item.request, generation)
            results[item.index] = result
            if on_result is not None:
                outcome = on_result(result)
                if asyncio.iscoroutine(outcome) or asyncio.isfuture(outcome):
                    await outcome

    workers = min(check_concurrency(concurrency), max(len(plan), 1))
    await asyncio.gather(*(worker(lanes[number % len(lanes)]) for number in range(workers)))
    return [result for result in results if result is not None]


def run_sync(
    plan: list[PlannedRequest],
    lanes: Sequence[Callable[[dict[str, Any], Decimal], Generation]],
    *,
    concurrency: int,
    pacer: ImagePacer | None,
    on_result: OnResult | None,
) -> list[BatchResult]:
    from concurrent.futures import ThreadPoolExecutor, wait

    results: list[BatchResult | None] = [None] * len(plan)
    pending = iter(plan)
    take, gate, stopping = threading.Lock(), threading.Lock(), threading.Event()

    def next_item() -> PlannedRequest | None:
        with take:
            return None if stopping.is_set() else next(pending, None)

    def worker(send: Callable[[dict[str, Any], Decimal], Generation]) -> None:
        while (item := next_item()) is not None:
            if item.body is None:
                result = BatchResult(item.index, item.request, error=item.error)
            else:
                if pacer is not None:
                    with gate:
                        _sync_wait(pacer, item.body["image_num"])
                try:
                    generation = send(item.body, item.cost)
                except Exception as error:  # one failure must never lose the others
                    result = BatchResult(item.index, item.request, error=error)
                else:
                    result = BatchResult(item.index, item.request, generation)
            results[item.index] = result
            if on_result is not None:
                on_result(result)

    workers = min(check_concurrency(concurrency), max(len(plan), 1))
    with ThreadPoolExecutor(workers, thread_name_prefix="novita-flux") as pool:
        futures = [pool.submit(worker, lanes[number % len(lanes)]) for number in range(workers)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Ctrl-C, or on_result failing: start nothing new, but let requests already sent
            # finish and be reported, since they may be billed. A second Ctrl-C aborts.
            stopping.set()
            wait(futures)
            raise
    return [result for result in results if result is not None]


async def _async_wait(pacer: ImagePacer, images: int) -> None:
    import asyncio

    # Re-check after every sleep: asyncio may wake a little early, and the promise is strict.
    while (now := time.monotonic()) < (ready := pacer.ready_at(images, now)):
        await asyncio.sleep(ready - now)
    pacer.record(images, now)


def _sync_wait(pacer: ImagePacer, images: int) -> None:
    while (now := time.monotonic()) < (ready := pacer.ready_at(images, now)):
        time.sleep(ready - now)
    pacer.record(images, now)
