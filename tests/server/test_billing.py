"""The reference server bills as the API does: once a task runs, whether or not the client stays
to hear the answer; and it says which answers were heard, so that "paid and lost" can be told
from "never ran"."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from novita_flux import APITimeoutError, FluxSchnell
from novita_flux.testing import ReferenceServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running() -> Iterator[ReferenceServer]:
    with ReferenceServer() as server:
        yield server


@pytest.fixture
def server(running: ReferenceServer) -> Iterator[ReferenceServer]:
    running.faults.reset()
    yield running
    running.faults.reset()


def test_a_call_whose_client_hung_up_is_still_billed_and_never_delivered(
    server: ReferenceServer,
) -> None:
    server.faults.latency = 0.6  # the task's run
    flux = FluxSchnell(api_key=server.api_key, base_url=server.url, timeout=0.2)
    with flux, pytest.raises(APITimeoutError, match="may have been billed"):
        flux.generate("x", width=64, height=64, seed=1)
    time.sleep(0.8)  # the task runs to its end on the server
    ((task_id, body),) = server.faults.billed
    assert body["seed"] == 1
    assert server.faults.delivered == []
    assert server.faults.undelivered == [task_id]
    assert len(server.faults.arrived) == 1


def test_an_answer_the_client_heard_is_billed_and_delivered(server: ReferenceServer) -> None:
    with FluxSchnell(api_key=server.api_key, base_url=server.url) as flux:
        generation = flux.generate("x", width=64, height=64)
    assert [task for task, _ in server.faults.billed] == [generation.task_id]
    assert server.faults.delivered == [generation.task_id]
    assert server.faults.undelivered == []


def test_a_dripping_answer_abandoned_half_way_is_billed_but_not_delivered(
    server: ReferenceServer,
) -> None:
    server.faults.drip_next(1, interval=0.05)
    flux = FluxSchnell(api_key=server.api_key, base_url=server.url, timeout=0.5)
    with flux, pytest.raises(APITimeoutError):
        flux.generate("x", width=64, height=64)
    time.sleep(0.3)
    assert len(server.faults.billed) == 1
    assert server.faults.delivered == []


def test_refused_calls_arrive_but_are_never_billed(server: ReferenceServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        http.post(
            "/v3beta/flux-1-schnell",
            json={"prompt": "x", "width": 1},
            headers={"Authorization": f"Bearer {server.api_key}"},
        )
        http.post("/v3beta/flux-1-schnell", json={"prompt": "x"})  # no key: never arrives
    assert server.faults.arrived == [{"prompt": "x", "width": 1}]
    assert server.faults.api_requests == 2
    assert server.faults.billed == []
