"""What the client makes of an error answer: the right exception, the envelope kept, and retries
exactly as the policy says."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
import respx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from novita_flux import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    FluxSchnell,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    _spec,
)
from novita_flux._constants import MAX_RETRY_AFTER, MAX_RETRY_DELAY
from tests.strategies import (
    KNOWN_REASONS,
    ErrorAnswer,
    documented_error_answers,
    error_answers,
    error_statuses,
    reason_and_status_answers,
    with_examples,
)
from tests.support import API_URL, KEY, Sleeps

EXAMPLE = _spec.request_example(_spec.GENERATE)

# The promise: a reason the spec knows decides by its kind; otherwise the status does.
BY_KIND: dict[str, type[APIStatusError]] = {
    "bad_request": BadRequestError,
    "authentication": AuthenticationError,
    "permission": PermissionDeniedError,
    "not_found": NotFoundError,
    "rate_limit": RateLimitError,
    "server": InternalServerError,
}
BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

# The sleeps fixture patches retry sleeping once for the whole test; each example clears it.
SHARES_SLEEPS = settings(
    suppress_health_check=[
        *settings.default.suppress_health_check,
        HealthCheck.function_scoped_fixture,
    ]
)


def expected_exception(status: int, reason: object) -> type[APIStatusError]:
    if isinstance(reason, str) and reason in KNOWN_REASONS:
        return BY_KIND[KNOWN_REASONS[reason].kind]
    if status >= 500:
        return InternalServerError
    return BY_STATUS.get(status, APIStatusError)


# The promise: 408 and 429 are retried; so is a reason the spec marks never billed that passes
# with time (kind rate_limit or server); any other 5xx only when the caller opted in.
TRANSIENT_KINDS = ("rate_limit", "server")


def retried(status: int, reason: object, retry_server_errors: bool) -> bool:
    if status in (408, 429):
        return True
    known = KNOWN_REASONS.get(reason) if isinstance(reason, str) else None
    if known is not None and known.billed == "never" and known.kind in TRANSIENT_KINDS:
        return True
    return retry_server_errors and status >= 500


def may_be_billed(status: int, reason: object) -> bool:
    known = KNOWN_REASONS.get(reason) if isinstance(reason, str) else None
    return known.billed != "never" if known is not None else status >= 500


@pytest.fixture(scope="module")
def flux() -> Iterator[FluxSchnell]:
    with FluxSchnell(api_key=KEY, max_retries=0) as client:
        yield client


def raised_by(flux: FluxSchnell, **options: object) -> APIStatusError:
    with pytest.raises(APIStatusError) as raised:
        flux.generate(**EXAMPLE, **options)  # type: ignore[arg-type]
    return raised.value


@given(answer=error_answers())
@with_examples(answer=reason_and_status_answers())
def test_an_error_raises_the_exception_of_its_known_reason_else_of_its_status(
    flux: FluxSchnell, answer: ErrorAnswer
) -> None:
    envelope = answer.envelope or {}
    with respx.mock as router:
        router.post(API_URL).respond(answer.status, content=answer.content)
        error = raised_by(flux)
    assert type(error) is expected_exception(answer.status, envelope.get("reason"))


@given(answer=error_answers())
@with_examples(answer=documented_error_answers() + reason_and_status_answers())
def test_an_error_keeps_status_reason_message_task_id_and_body(
    flux: FluxSchnell, answer: ErrorAnswer
) -> None:
    envelope = answer.envelope or {}
    with respx.mock as router:
        router.post(API_URL).respond(answer.status, content=answer.content)
        error = raised_by(flux)
    assert (error.status_code, error.code) == (answer.status, envelope.get("code"))
    assert (error.reason, error.message) == (envelope.get("reason"), envelope.get("message"))
    assert error.task_id == envelope.get("metadata", {}).get("task_id")
    assert error.body == (answer.content.decode() if answer.envelope is None else envelope)


def every_reason_both_ways(test: Callable[..., None]) -> Callable[..., None]:
    """Each known reason and each status, with and without opting in: explicit @examples."""
    for answer in reason_and_status_answers():
        for opted_in in (False, True):
            test = example(answer=answer, max_retries=2, opted_in=opted_in)(test)
    return test


@SHARES_SLEEPS
@given(answer=error_answers(), max_retries=st.integers(0, 4), opted_in=st.booleans())
@every_reason_both_ways
def test_only_answers_known_not_billed_are_retried_unless_the_caller_opts_in(
    flux: FluxSchnell, sleeps: Sleeps, answer: ErrorAnswer, max_retries: int, opted_in: bool
) -> None:
    sleeps.clear()
    reason = (answer.envelope or {}).get("reason")
    with respx.mock as router:
        route = router.post(API_URL).respond(answer.status, content=answer.content)
        error = raised_by(flux, max_retries=max_retries, retry_server_errors=opted_in)
    attempts = 1 + max_retries if retried(answer.status, reason, opted_in) else 1
    assert route.call_count == attempts
    assert len(sleeps) == attempts - 1
    assert all(0 < delay <= MAX_RETRY_DELAY for delay in sleeps)
    assert error.possibly_billed == may_be_billed(answer.status, reason)
    assert ("may have been billed" in str(error)) == error.possibly_billed


def retry_after_seconds() -> st.SearchStrategy[float]:
    """Waits either side of the cap, the cap itself and the float just past it included."""
    beyond = math.nextafter(MAX_RETRY_AFTER, math.inf)
    return st.one_of(
        st.sampled_from([0.0, MAX_RETRY_AFTER, beyond]),
        st.floats(0, MAX_RETRY_AFTER),
        st.floats(min_value=beyond, allow_infinity=False),
    )


@SHARES_SLEEPS
@given(
    answer=error_answers(statuses=error_statuses().filter(lambda s: s in (408, 429) or s >= 500)),
    max_retries=st.integers(0, 4),
    wait=retry_after_seconds(),
)
def test_retry_after_is_waited_exactly_up_to_the_cap_and_beyond_it_the_error_is_raised_at_once(
    flux: FluxSchnell, sleeps: Sleeps, answer: ErrorAnswer, max_retries: int, wait: float
) -> None:
    sleeps.clear()
    with respx.mock as router:
        route = router.post(API_URL).respond(
            answer.status, content=answer.content, headers={"Retry-After": repr(wait)}
        )
        error = raised_by(flux, max_retries=max_retries, retry_server_errors=True)
    assert error.retry_after == wait
    if wait <= MAX_RETRY_AFTER:
        assert route.call_count == 1 + max_retries
        assert sleeps == [wait] * max_retries
    else:
        assert route.call_count == 1
        assert sleeps == []
