"""Faults: what the reference server should get wrong next, and what it has seen so far."""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any, Literal, NamedTuple, get_args

from novita_flux._spec import known_reasons
from novita_flux.testing._profiles import PROFILES, Profile

MalformedKind = Literal[
    "not_json", "truncated_json", "missing_field", "wrong_type", "unknown_image_type"
]
MALFORMED_KINDS: tuple[MalformedKind, ...] = get_args(MalformedKind)

WINDOW = 60.0  # seconds: the API's limit is per minute, counted over a rolling window


class _ProfileDefault:
    def __repr__(self) -> str:
        return "PROFILE_DEFAULT"


PROFILE_DEFAULT = _ProfileDefault()


class QueuedFault(NamedTuple):
    """One queued fault: an error envelope, a gateway's bare error page, a 200 whose body breaks
    the contract, or a 200 that arrives a byte at a time."""

    status: int
    reason: str = ""
    message: str = ""
    retry_after: str | None = None
    malformed: MalformedKind | None = None
    bare: bool = False  # an HTML page from a proxy in front of the API, no envelope
    drip: float | None = None  # seconds between the bytes of a 200
    images: int | None = None  # a 200 with this many images, whatever image_num asked for


ImageFault = Literal["cut", "drip"]


class Faults:
    """Fault injection and counters of one reference server app (`app.state.faults`).

    Queued faults answer the next requests that would otherwise have succeeded (authenticated,
    with a valid body), one request each, in the order they were queued. `latency` delays every
    API request; `images_per_minute` turns on the API's rolling per-minute image limit. Safe to
    use from the test's thread while a `ReferenceServer` serves in another.

    Counters of what a client did: `api_requests` (every request to the operation, retries
    included, whatever its answer), `arrived` (the JSON body of every authenticated request to
    the operation, in the order they came, whatever its answer), `billed` (the tasks that ran, as
    (task_id, request body) pairs: what the real API charges for, billed once the task runs,
    whether or not the client stays to hear the answer), `delivered` (the task ids whose whole
    answer reached a client still connected; `undelivered` are the billed ones that did not:
    paid for, and lost unless the client recorded what it sent), `image_requests` (every request
    to an image link), `image_downloads` (images served) and
    `image_requests_with_authorization` (image requests that carried an Authorization header; a
    client that keeps its key to itself leaves it at 0).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        images_per_minute: int | None = None,
        profile: Profile = PROFILES["documented"],
    ) -> None:
        self._initial = (latency, images_per_minute)
        self.profile = profile
        self._lock = threading.Lock()
        self._queue: deque[QueuedFault] = deque()
        self._image_queue: deque[tuple[ImageFault, float]] = deque()
        self._window: deque[tuple[float, int]] = deque()
        self._used = 0  # images in the window
        self.latency = latency
        self.images_per_minute = images_per_minute
        self.api_requests = 0
        self.arrived: list[Any] = []
        self.billed: list[tuple[str, dict[str, Any]]] = []
        self.delivered: list[str] = []
        self.image_requests = 0
        self.image_downloads = 0
        self.image_requests_with_authorization = 0

    @property
    def latency(self) -> float:
        """Seconds every API request waits before it is answered."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError(f"latency must be >= 0 seconds, not {seconds!r}")
        self._latency = float(seconds)

    @property
    def images_per_minute(self) -> int | None:
        """The most images all calls may generate in any 60 s; None for no limit."""
        return self._images_per_minute

    @images_per_minute.setter
    def images_per_minute(self, limit: int | None) -> None:
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise ValueError(f"images_per_minute must be >= 1 or None, not {limit!r}")
        self._images_per_minute = limit

    @property
    def pending(self) -> int:
        """How many queued faults have not been served yet."""
        with self._lock:
            return len(self._queue)

    def rate_limit_next(
        self, n: int = 1, *, retry_after: int | str | _ProfileDefault | None = PROFILE_DEFAULT
    ) -> None:
        """Answer the next n requests 429 RATE_LIMIT_EXCEEDED.

        retry_after is the Retry-After header: seconds, a verbatim string (an HTTP date, or
        something malformed to test a client's parsing), or None to send no header. By default,
        what the profile does: 1 s for `documented`, no header for `observed`.
        """
        if isinstance(retry_after, _ProfileDefault):
            retry_after = 1 if self.profile.retry_after_on_429 else None
        self.fail_next(n, reason="RATE_LIMIT_EXCEEDED", retry_after=retry_after)

    def fail_next(
        self,
        n: int = 1,
        *,
        reason: str = "TASK_FAILED",
        status: int | None = None,
        message: str | None = None,
        retry_after: int | str | None = None,
    ) -> None:
        """Answer the next n requests with the error envelope of reason.

        The status is the spec's for a known reason (TASK_FAILED 500, SERVICE_NOT_AVAILABLE 503,
        BILLING_BALANCE_NOT_ENOUGH 400, ...); a reason the spec does not know needs status.
        TASK_FAILED carries a fresh task_id in its metadata, as the real API's does.
        """
        known = known_reasons().get(reason)
        if status is None:
            if known is None:
                raise ValueError(f"{reason!r} is not a reason the spec knows; pass its status")
            status = self.profile.statuses.get(reason, known.status)
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an error status (400-599), not {status}")
        text = message if message is not None else reason.lower().replace("_", " ")
        header = None if retry_after is None else str(retry_after)
        self._plan(n, QueuedFault(status, reason, text, header))

    def malform_next(self, n: int = 1, kind: MalformedKind = "not_json") -> None:
        """Answer the next n requests 200 with a body that breaks the contract in this way:
        not_json, truncated_json, missing_field (no `images`), wrong_type (`image_url_ttl` a
        fraction, which neither an integer nor a string of digits is) or unknown_image_type
        (`image_type` "gif")."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"kind must be one of {', '.join(MALFORMED_KINDS)}, not {kind!r}")
        self._plan(n, QueuedFault(200, malformed=kind))

    def short_answer_next(self, n: int = 1, *, images: int = 0) -> None:
        """Answer the next n requests 200 with `images` images, whatever `image_num` asked for:
        fewer (a short answer) or, if `images` is larger, more. The task is billed for what was
        asked, as the API's would be. 0 breaks the spec's `minItems`; a count within
        image_num's range breaks only the rule the spec states in words (one image for each
        image paid for)."""
        if isinstance(images, bool) or not isinstance(images, int) or images < 0:
            raise ValueError(f"images must be an integer >= 0, not {images!r}")
        self._plan(n, QueuedFault(200, images=images))

    def gateway_error_next(self, n: int = 1, *, status: int = 502) -> None:
        """Answer the next n requests as a gateway in front of the API would: an HTML page with
        this 5xx status and no error envelope (was the task run? nobody can tell)."""
        if not 500 <= status <= 599:
            raise ValueError(f"status must be a server error (500-599), not {status}")
        self._plan(n, QueuedFault(status, bare=True))

    def drip_next(self, n: int = 1, *, interval: float = 0.5) -> None:
        """Answer the next n requests 200, sending the body one byte every `interval` seconds
        (a server holding a call open without ever tripping a read timeout)."""
        self._plan(n, QueuedFault(200, drip=_positive("interval", interval)))

    def cut_images_next(self, n: int = 1) -> None:
        """Serve the next n image downloads cut in half: a complete HTTP answer whose image ends
        early, as a connection closed early with no Content-Length looks to a client."""
        self._plan_images(n, "cut", 0.0)

    def drip_images_next(self, n: int = 1, *, interval: float = 0.5) -> None:
        """Serve the next n image downloads one byte every `interval` seconds."""
        self._plan_images(n, "drip", _positive("interval", interval))

    def reset(self) -> None:
        """Forget queued faults, counters and the rate window; restore latency and the limit."""
        with self._lock:
            self._queue.clear()
            self._image_queue.clear()
            self._window.clear()
            self._used = 0
            self.latency, self.images_per_minute = self._initial
            self.api_requests = self.image_requests = self.image_downloads = 0
            self.arrived = []
            self.billed = []
            self.delivered = []
            self.image_requests_with_authorization = 0

    @property
    def undelivered(self) -> list[str]:
        """Task ids billed whose answer never reached the client: paid for, never heard."""
        with self._lock:
            heard = set(self.delivered)
            return [task_id for task_id, _ in self.billed if task_id not in heard]

    # --- The server's side: called by the app as requests arrive; a test reads the counters --

    def _plan(self, n: int, fault: QueuedFault) -> None:
        if isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be >= 1, not {n!r}")
        with self._lock:
            self._queue.extend([fault] * n)

    def _plan_images(self, n: int, kind: ImageFault, interval: float) -> None:
        if isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be >= 1, not {n!r}")
        with self._lock:
            self._image_queue.extend([(kind, interval)] * n)

    def next_image_fault(self) -> tuple[ImageFault, float] | None:
        with self._lock:
            return self._image_queue.popleft() if self._image_queue else None

    def record_arrival(self, body: Any) -> None:
        with self._lock:
            self.arrived.append(body)

    def record_billed(self, task_id: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.billed.append((task_id, body))

    def record_delivered(self, task_id: str) -> None:
        with self._lock:
            self.delivered.append(task_id)

    def count_api_request(self) -> None:
        with self._lock:
            self.api_requests += 1

    def count_image_request(self, *, authorized: bool, served: bool) -> None:
        with self._lock:
            self.image_requests += 1
            self.image_requests_with_authorization += authorized
            self.image_downloads += served

    def next_fault(self) -> QueuedFault | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def admit(self, images: int, now: float) -> int | None:
        """Record images generated at now; or, over the limit, the whole seconds to wait.

        Only counted while a limit is set, and with a running total: the server's cost per
        request must not grow with how many requests it has already answered.
        """
        with self._lock:
            limit = self._images_per_minute
            if limit is None:
                return None
            while self._window and self._window[0][0] <= now - WINDOW:
                self._used -= self._window.popleft()[1]
            if self._used + images <= limit:
                self._window.append((now, images))
                self._used += images
                return None
            if images > limit:
                return math.ceil(WINDOW)  # never fits; a minute is the honest answer
            used = self._used
            for stamp, count in self._window:
                used -= count
                if used + images <= limit:
                    return max(1, math.ceil(stamp + WINDOW - now))
            return math.ceil(WINDOW)  # unreachable: an empty window always fits


def _positive(name: str, seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {seconds!r}")
    return float(seconds)
