"""What a call stopped from outside (a cancelled task, Ctrl-C) leaves on the exception that stops
it, when the call may already have been paid for.

The API bills a generation once its task runs, whether or not anyone waits for the answer, and
the answer holds the only links to the images. So a stopped call never just vanishes: the
exception that stops it (asyncio.CancelledError, KeyboardInterrupt; under asyncio.timeout or
wait_for it is the `__cause__` of the TimeoutError) gets a note saying what was paid for and
where it is, and the same as attributes:

- `generation`: the Generation the API answered with (a cancelled async call waits for it);
- `error`: the NovitaError the API answered with instead, or an APIConnectionError saying no
  answer was heard (`possibly_billed` says whether the request may have reached the API);
- `saved` and `unsaved`: the files written and the images still to fetch, when saving stopped;
- `results`: a batch's BatchResults so far, those that were in flight included.

A warning on the `novita_flux` logger says the same, for code that does not look.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from novita_flux._constants import LOGGER_NAME
from novita_flux._errors import APIConnectionError, NovitaError
from novita_flux._models import link_of

if TYPE_CHECKING:
    from novita_flux._batch import BatchResult
    from novita_flux._models import GeneratedImage, Generation

logger = logging.getLogger(LOGGER_NAME)
_LISTED = 5  # task ids named in a note; the rest are on .results


def links(generation: Generation, images: Sequence[GeneratedImage] | None = None) -> str:
    chosen = generation.images if images is None else images
    return "; ".join(f"image {image.index} {link_of(image)}" for image in chosen)


def _say(stop: BaseException, text: str, **attributes: Any) -> None:
    for name, value in attributes.items():
        setattr(stop, name, value)
    stop.add_note(f"novita-flux: {text}")
    logger.warning("%s: %s", type(stop).__name__, text)


def in_flight(stop: BaseException, request: str) -> None:
    """Stopped while the request was on the wire, before any answer was read."""
    text = (
        f"stopped while the request ({request}) was on the wire: it may have been billed, and "
        "no answer was read, so no task id is known"
    )
    error = APIConnectionError(text)
    error.possibly_billed = True
    _say(stop, text, generation=None, error=error)


def answered(
    stop: BaseException, generation: Generation | None = None, error: NovitaError | None = None
) -> None:
    """Stopped after the request left; its answer was heard before the stop took effect: a
    Generation, an error, or neither (an answer the API does not bill, which would have been
    retried)."""
    if generation is not None:
        text = (
            f"stopped after the call was paid for: task {generation.task_id}, "
            f"{len(generation.images)} image(s): {links(generation)} (its Generation is on this "
            "exception as .generation)"
        )
    elif error is not None:
        text = f"stopped after the API answered {type(error).__name__}: {error} (as .error)"
    else:
        text = "stopped before a retry was sent; the answer before it was one the API does not bill"
        error = APIConnectionError(text)
    _say(stop, text, generation=generation, error=error)


def while_saving(
    stop: BaseException,
    generation: Generation,
    saved: Sequence[Path],
    unsaved: Sequence[GeneratedImage],
) -> None:
    files = ", ".join(str(path) for path in saved) or "none"
    _say(
        stop,
        f"saving the images of task {generation.task_id} stopped: saved {files}; not saved: "
        f"{links(generation, unsaved) or 'none'}",
        saved=list(saved),
        unsaved=list(unsaved),
    )


def batch_stopped(stop: BaseException, results: Sequence[BatchResult]) -> None:
    paid = [result.generation for result in results if result.generation is not None]
    doubtful = [
        result
        for result in results
        if result.error is not None and getattr(result.error, "possibly_billed", False)
    ]
    tasks = ", ".join(generation.task_id for generation in paid[:_LISTED]) or "none"
    if len(paid) > _LISTED:
        tasks += f" and {len(paid) - _LISTED} more"
    _say(
        stop,
        f"the batch stopped after {len(results)} result(s) (all on this exception as .results; "
        f"paid: {tasks}; possibly billed without an answer: {len(doubtful)}); nothing more was "
        "sent",
        results=list(results),
    )
