"""Cancelling a library call at every await, deterministically.

`Steps` is an event loop's task factory that wraps every task's coroutine and counts each time
any task of the loop suspends (an `await` that really waits). Run a call once to learn how many
steps it takes; then, for every k, run it again and strike at the k-th step: the cancellation
then reaches the call while each of its tasks (the call itself, the exchange it sent, a batch's
workers) stands at one of its awaits. Which await that is does not depend on timing: only the
order in which the loop runs what is ready, which is the same from run to run but for what the
network makes ready.

The four ways a caller stops a call (`FORMS`):
- `cancel`: `task.cancel()` at the step;
- `timeout`: `async with asyncio.timeout(...)`, its deadline moved to now at the step;
- `wait_for`: `asyncio.wait_for(call, T)`, the loop's clock moved T ahead at the step;
- `taskgroup`: a sibling task in the same `asyncio.TaskGroup` fails at the step.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

R = TypeVar("R")

FORMS = ("cancel", "timeout", "wait_for", "taskgroup")
WAIT_FOR = 1000.0  # wait_for's limit; the clock jumps this far (the client's timeout is more)


class SiblingFailed(Exception):
    """The TaskGroup sibling's failure."""


class Steps:
    def __init__(self) -> None:
        self.count = 0
        self.at: int | None = None
        self.strike: Callable[[], None] | None = None
        self.struck_at: int | None = None
        self.cancel_seen_at: int | None = None  # the step at which the call first saw it
        self.call: asyncio.Task[Any] | None = None
        # Every coroutine handed to a task: one whose task was cancelled before it started is
        # closed after the run, so that no "never awaited" warning lands in a later test.
        self.coroutines: list[Coroutine[Any, Any, Any]] = []

    def factory(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        wrapped = self._wrapped(coro)
        self.coroutines += [coro, wrapped]
        return asyncio.Task(wrapped, loop=loop, context=context)

    def close_unstarted(self) -> None:
        for coro in self.coroutines:
            coro.close()
        self.coroutines.clear()

    async def _wrapped(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return await self._driver(coro)

    @types.coroutine
    def _driver(self, coro: Coroutine[Any, Any, Any]) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            cancelled = isinstance(error, asyncio.CancelledError)
            if cancelled and self.cancel_seen_at is None and asyncio.current_task() is self.call:
                self.cancel_seen_at = self.count
            try:
                yielded = coro.throw(error) if error is not None else coro.send(value)
            except StopIteration as done:
                return done.value
            self.count += 1
            if self.count == self.at and self.strike is not None:
                self.struck_at = self.count
                self.strike()
            try:
                value, error = (yield yielded), None
            except BaseException as exc:
                value, error = None, exc


class Clock:
    """An event loop's clock that a test can move forward (asyncio and anyio read loop.time())."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.offset = 0.0
        real = loop.time
        loop.time = lambda: real() + self.offset  # type: ignore[method-assign]


def run_struck(
    form: str,
    resources: Callable[[], AbstractAsyncContextManager[R]],
    call: Callable[[R], Awaitable[Any]],
    at: int | None,
    steps: Steps,
) -> tuple[Any, BaseException | None]:
    """Run `call(resource)` in a new loop, stopped by `form` at step `at` (None: never); the
    resource (a client) is opened before and closed after, outside what is stopped. Returns
    what the call returned and the exception its caller saw (for a TaskGroup: the call's own,
    as its task holds it)."""
    loop = asyncio.new_event_loop()
    clock = Clock(loop)
    loop.set_task_factory(steps.factory)  # type: ignore[arg-type]
    outcome: list[Any] = [None]

    async def main() -> None:
        async with resources() as resource:
            steps.count, steps.at, steps.struck_at, steps.cancel_seen_at = 0, at, None, None
            try:
                outcome[0] = await _stopped(form, lambda: call(resource), steps, clock)
            finally:
                steps.at = None  # closing the resource is not part of the call

    try:
        loop.run_until_complete(main())
    except BaseException as error:
        return outcome[0], error
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        steps.close_unstarted()
    return outcome[0], None


async def _stopped(
    form: str, call: Callable[[], Awaitable[Any]], steps: Steps, clock: Clock
) -> Any:
    loop = asyncio.get_running_loop()
    if form == "cancel":
        steps.call = task = asyncio.ensure_future(call())
        steps.strike = task.cancel
        return await task
    if form == "timeout":
        entered: list[asyncio.Timeout] = []

        async def timed() -> Any:
            async with asyncio.timeout(None) as deadline:
                entered.append(deadline)
                return await call()

        def expire() -> None:
            if entered:
                entered[0].reschedule(loop.time())
            else:  # the block is not entered yet: its task is stopped before it starts
                task.cancel()

        steps.strike = expire
        steps.call = task = asyncio.ensure_future(timed())
        return await task
    if form == "wait_for":

        def jump() -> None:
            clock.offset += WAIT_FOR

        steps.strike = jump
        steps.call = task = asyncio.ensure_future(call())
        return await asyncio.wait_for(task, WAIT_FOR)
    if form != "taskgroup":
        raise ValueError(form)
    failed = asyncio.Event()

    async def sibling() -> None:
        await failed.wait()
        raise SiblingFailed("a sibling task failed")

    steps.strike = failed.set
    try:
        async with asyncio.TaskGroup() as group:
            steps.call = task = group.create_task(call())
            group.create_task(sibling())
            await asyncio.wait((task,))
            failed.set()  # the call is done: let the sibling end the group
    except BaseExceptionGroup as group_error:
        _, rest = group_error.split(SiblingFailed)
        if rest is not None:  # the call's own failure: the caller sees it
            raise rest from None
    if task.cancelled():
        try:
            task.result()
        except asyncio.CancelledError as own:  # the call's own exception, kept on its task
            raise own from None
    return task.result()
