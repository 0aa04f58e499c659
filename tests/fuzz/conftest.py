"""What every fuzz suite shares: no way out to the network, and a count of what each entry point
was given, summed over the run (and over xdist's workers) in the closing summary."""

from __future__ import annotations

import socket
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fuzz.summary import PROPERTY

# Binding to every interface is local too: nothing leaves the machine.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "0.0.0.0", "::", ""})  # noqa: S104


class OutsideAttempts(list[str]):
    """Hosts something tried to reach beyond this machine (refused before any packet left)."""


def _host_text(host: Any) -> str:
    return host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> OutsideAttempts:
    """Only loopback is reachable: a name is encoded as CPython's socket module encodes it (so a
    host the socket layer cannot take still fails the way it would), then refused as unknown;
    binding or connecting to an address off this machine is refused too. Every attempt is
    recorded, so a refused call can be checked to have reached nothing."""
    attempts = OutsideAttempts()
    real_getaddrinfo = socket.getaddrinfo
    real_bind, real_connect = socket.socket.bind, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is None or _host_text(host) in LOOPBACK:
            return real_getaddrinfo(host, *args, **kwargs)
        if isinstance(host, str):
            host.encode("idna")  # what socket.getaddrinfo does first, in C
        attempts.append(_host_text(host))
        raise socket.gaierror(socket.EAI_NONAME, "no network in the fuzz tests")

    def guarded(real: Any) -> Any:
        def call(self: socket.socket, address: Any) -> Any:
            host = address[0] if isinstance(address, tuple) else None
            if host is not None and not _loopback(_host_text(host)):
                if isinstance(host, str):
                    host.encode("idna")
                attempts.append(_host_text(host))
                raise socket.gaierror(socket.EAI_NONAME, "no network in the fuzz tests")
            return real(self, address)

        return call

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "bind", guarded(real_bind))
    monkeypatch.setattr(socket.socket, "connect", guarded(real_connect))
    return attempts


def _loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


class Inputs:
    """How many inputs each entry point took in one test, and what became of them."""

    def __init__(self) -> None:
        self.taken: Counter[str] = Counter()
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def took(self, entry_point: str, outcome: str) -> None:
        self.taken[entry_point] += 1
        self.outcomes[entry_point][outcome] += 1


@pytest.fixture
def inputs(record_property: Any) -> Iterator[Inputs]:
    """Count each input a fuzz test gives an entry point; the counts reach the summary."""
    counted = Inputs()
    yield counted
    record_property(PROPERTY, {name: dict(outcomes) for name, outcomes in counted.outcomes.items()})
