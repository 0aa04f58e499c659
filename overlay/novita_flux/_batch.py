"""Many generations at once: planned and priced up front, paced to the API's image rate,
run with bounded concurrency, and reported one result per request in input order.

The engine (run_threads, run_tasks) runs any work over a stream of items; generate_many and the
`batch` command both use it. Workers are spread over `lanes` (one work function per client):
worker n uses lane n % lanes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from novita_flux._config import check_count
from novita_flux._constants import MAX_CONCURRENCY, PACING_SLACK
from novita_flux._errors import NovitaError, ValidationError
from novita_flux._interrupts import batch_stopped
from novita_flux._models import Generation
from novita_flux._request import as_budget, check_budget, prepare_request
from novita_flux._schema import show

if TYPE_CHECKING:
    import asyncio

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
            check_pace(body, images_per_minute, "images_per_minute=")
        except NovitaError as error:
            plan.append(PlannedRequest(index, request, error=error))
        else:
            plan.append(PlannedRequest(index, request, body, cost))
    if max_total_cost is not None:
        check_budget(total_cost(plan), as_budget(max_total_cost, "max_total_cost"), "batch")
    return plan


def check_pace(body: Mapping[str, Any], limit: int | None, named: str) -> None:
    """Refuse a request that could never be sent under the pace `limit` (`named` says where
    the limit was set, as the caller would write it)."""
    if limit is not None and body["image_num"] > limit:
        raise ValidationError(
            "image_num",
            body["image_num"],
            f"at most {limit}",
            f"image_num: {body['image_num']} can never be sent under {named}{limit}",
        )


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
        # Seconds an image buys, computed exactly: a limit past what a float holds (a caller may
        # pass any int) is a spacing of 0, not an OverflowError.
        self._spacing = float(Fraction(window) / self.limit)
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
        self._next_free = now + images * self._spacing * PACING_SLACK


OnResult = Callable[[BatchResult], Any]
# A lane's work in generate_many: send one body; `proceed` is asked just before it leaves.
AsyncSend = Callable[[dict[str, Any], Decimal, Callable[[], bool]], Awaitable[Generation]]


class Withdrawn(Exception):
    """A request the batch stopped before it left: nothing was sent, so there is no result."""


def check_concurrency(concurrency: int) -> int:
    return check_count("concurrency", concurrency, 1, MAX_CONCURRENCY)


# --- the engine: items taken in order by `concurrency` workers, paced, stoppable ----------------
#
# A send is paid for, so stopping means: take nothing new, never release a request still waiting
# for its pacing slot, and let what is already on the wire finish and be recorded. Whatever
# stops the run (the stop event, a failing work function, Ctrl-C) stops it the same way.

T = TypeVar("T")


def run_threads(
    items: Iterator[T],
    lanes: Sequence[Callable[[T], None]],
    *,
    concurrency: int,
    pacer: ImagePacer | None,
    images: Callable[[T], int],
    stop: threading.Event | None = None,
    take: threading.Lock | None = None,
) -> None:
    """Call a lane's work function on every item, on `concurrency` threads (worker n uses lane
    n % len(lanes)); items for which `images` is positive first wait for a pacing slot. The
    first exception (from work, or KeyboardInterrupt here) stops the run and is raised once the
    workers have finished what they had started. Items are taken under `take`: work that holds
    it while it may fail (and sets `stop` before letting go) is sure no item is taken meanwhile."""
    from concurrent.futures import ThreadPoolExecutor

    stop = stop if stop is not None else threading.Event()
    take, gate = take if take is not None else threading.Lock(), threading.Lock()
    # Items taken and not yet finished, counted under `take`: after a stop, the run waits until
    # it is 0, whatever state the pool's own bookkeeping is in (a Ctrl-C can land while a
    # worker thread is being started, before the pool would wait for it).
    busy = threading.Condition(take)
    taken = 0

    def next_item() -> T | None:
        nonlocal taken
        with take:
            item = None if stop.is_set() else next(items, None)
            taken += item is not None
            return item

    def finished() -> None:
        nonlocal taken
        with busy:
            taken -= 1
            busy.notify_all()

    def worker(work: Callable[[T], None]) -> None:
        while (item := next_item()) is not None:
            try:
                count = images(item)
                if pacer is not None and count:
                    with gate:  # one waiter at a time keeps releases in input order
                        if not _sync_wait(pacer, count, stop):
                            return
                if stop.is_set():
                    return
                try:
                    work(item)
                except BaseException:
                    stop.set()  # at once, so that no other worker takes another item
                    raise
            finally:
                finished()

    workers = check_concurrency(concurrency)
    with ThreadPoolExecutor(workers, thread_name_prefix="novita-flux") as pool:
        futures = []
        try:
            for number in range(workers):
                futures.append(pool.submit(worker, lanes[number % len(lanes)]))
            for future in futures:
                future.result()
        except BaseException:
            # Start nothing new, but let requests already sent finish and be recorded, since
            # they may be billed. A second Ctrl-C aborts the wait.
            stop.set()
            with busy:
                busy.wait_for(lambda: taken == 0)
            raise


async def run_tasks(
    items: Iterator[T],
    lanes: Sequence[Callable[[T], Awaitable[None]]],
    *,
    concurrency: int,
    pacer: ImagePacer | None,
    images: Callable[[T], int],
    stop: asyncio.Event | None = None,
) -> None:
    """run_threads for coroutines: the same contract, on `concurrency` tasks. When one fails,
    the others take nothing new, stop waiting for pacing slots and end; the exception is raised
    once the requests they had sent are finished and recorded, never before."""
    import asyncio

    halt = stop if stop is not None else asyncio.Event()
    gate = asyncio.Lock()

    async def worker(work: Callable[[T], Awaitable[None]]) -> None:
        while not halt.is_set() and (item := next(items, None)) is not None:
            count = images(item)
            if pacer is not None and count:
                async with gate:
                    if not await _async_wait(pacer, count, halt):
                        return
            if halt.is_set():
                return
            try:
                await work(item)
            except BaseException:
                halt.set()
                raise

    workers = check_concurrency(concurrency)
    tasks = [asyncio.ensure_future(worker(lanes[number % len(lanes)])) for number in range(workers)]
    try:
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        # Cancelled from outside (Ctrl-C under asyncio.run): cancelling a gather cancels every
        # task in it and completes only once they all have, so nothing is left running here.
        halt.set()
        raise
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


# --- generate_many: the engine over a plan, one BatchResult per request -------------------------


async def run_async(
    plan: list[PlannedRequest],
    lanes: Sequence[AsyncSend],
    *,
    concurrency: int,
    pacer: ImagePacer | None,
    on_result: OnResult | None,
) -> list[BatchResult]:
    import asyncio

    results: list[BatchResult | None] = [None] * len(plan)
    halt = asyncio.Event()

    def proceed() -> bool:
        return not halt.is_set()

    async def report(result: BatchResult) -> None:
        results[result.index] = result
        # No lock, unlike run_sync: the tasks share one event loop and a plain on_result runs
        # to its end without yielding, so two calls never overlap. (An awaitable it returns
        # may interleave with another's; an async callback chose that.)
        if on_result is not None:
            outcome = on_result(result)
            if asyncio.iscoroutine(outcome) or asyncio.isfuture(outcome):
                await outcome

    def work_for(send: AsyncSend) -> Callable[[PlannedRequest], Awaitable[None]]:
        async def work(item: PlannedRequest) -> None:
            if item.body is None:
                result = BatchResult(item.index, item.request, error=item.error)
            else:
                try:
                    generation = await send(item.body, item.cost, proceed)
                except Withdrawn:  # the batch stopped before this one left: it never ran
                    return
                except Exception as error:  # one failure must never lose the others
                    result = BatchResult(item.index, item.request, error=error)
                except asyncio.CancelledError as stop:
                    # The send in flight was let finish (see AsyncFluxSchnell._send_heard): what
                    # it heard is reported like any other result, then the cancellation goes on.
                    heard = getattr(stop, "generation", None)
                    said = getattr(stop, "error", None)
                    if heard is not None or said is not None:
                        await report(BatchResult(item.index, item.request, heard, said))
                    raise
                else:
                    result = BatchResult(item.index, item.request, generation)
            await report(result)

        return work

    try:
        await run_tasks(
            iter(plan),
            [work_for(send) for send in lanes],
            concurrency=min(check_concurrency(concurrency), max(len(plan), 1)),
            pacer=pacer,
            images=_images_of,
            stop=halt,
        )
    except asyncio.CancelledError as stop:
        batch_stopped(stop, [result for result in results if result is not None])
        raise
    return [result for result in results if result is not None]


def run_sync(
    plan: list[PlannedRequest],
    lanes: Sequence[Callable[[dict[str, Any], Decimal], Generation]],
    *,
    concurrency: int,
    pacer: ImagePacer | None,
    on_result: OnResult | None,
) -> list[BatchResult]:
    results: list[BatchResult | None] = [None] * len(plan)
    # on_result runs under the lock workers take items with, one call at a time: when it
    # raises, the run is stopped before any worker can take another item.
    stop, take = threading.Event(), threading.Lock()

    def report(result: BatchResult) -> None:
        if on_result is None:
            return
        with take:
            try:
                on_result(result)
            except BaseException:
                stop.set()
                raise

    def work_for(
        send: Callable[[dict[str, Any], Decimal], Generation],
    ) -> Callable[[PlannedRequest], None]:
        def work(item: PlannedRequest) -> None:
            if item.body is None:
                result = BatchResult(item.index, item.request, error=item.error)
            else:
                try:
                    generation = send(item.body, item.cost)
                except Exception as error:  # one failure must never lose the others
                    result = BatchResult(item.index, item.request, error=error)
                else:
                    result = BatchResult(item.index, item.request, generation)
            results[item.index] = result
            report(result)

        return work

    try:
        run_threads(
            iter(plan),
            [work_for(send) for send in lanes],
            concurrency=min(check_concurrency(concurrency), max(len(plan), 1)),
            pacer=pacer,
            images=_images_of,
            stop=stop,
            take=take,
        )
    except KeyboardInterrupt as interrupt:  # the requests on the wire were let finish
        batch_stopped(interrupt, [result for result in results if result is not None])
        raise
    return [result for result in results if result is not None]


def _images_of(item: PlannedRequest) -> int:
    return int(item.body["image_num"]) if item.body is not None else 0


def _sync_wait(pacer: ImagePacer, images: int, stop: threading.Event) -> bool:
    """Wait for the pacing slot of `images`; False if the run was stopped meanwhile."""
    while (now := time.monotonic()) < (ready := pacer.ready_at(images, now)):
        if stop.wait(ready - now):
            return False
    if stop.is_set():
        return False
    pacer.record(images, now)
    return True


async def _async_wait(pacer: ImagePacer, images: int, stop: asyncio.Event) -> bool:
    import asyncio

    # Re-check after every wait: asyncio may wake a little early, and the promise is strict.
    while (now := time.monotonic()) < (ready := pacer.ready_at(images, now)):
        try:
            await asyncio.wait_for(stop.wait(), ready - now)
        except TimeoutError:
            continue
        return False
    if stop.is_set():
        return False
    pacer.record(images, now)
    return True
