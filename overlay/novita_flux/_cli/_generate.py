"""`novita-flux generate` and `novita-flux price`: one request, priced, sent and saved."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from novita_flux._cli import _calls as calls
from novita_flux._cli._common import (
    EXIT_API_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BadInput,
    Console,
    PaidButInterrupted,
    client_options,
    open_client,
    paid_links,
)
from novita_flux._cli._options import (
    REQUEST_DEFAULTS,
    add_api_options,
    add_output_options,
    add_request_options,
    budget,
    spec_field,
    spec_help,
    writable_directory,
)
from novita_flux._cli._signals import deferred
from novita_flux._client import FluxSchnell
from novita_flux._errors import NovitaError, SaveIncompleteError
from novita_flux._faultpoints import reach
from novita_flux._gallery import write_gallery
from novita_flux._identity import canonical
from novita_flux._images import image_index
from novita_flux._models import Generation
from novita_flux._request import estimate_cost, field_schema, prepare_request
from novita_flux._spec import pricing


class PaidButNotSaved(NovitaError):
    """Saving failed after the call was paid for: the message keeps the task and its links."""

    possibly_billed = True


def add_parsers(commands: Any) -> None:
    image_type = field_schema("response_image_type")
    generate = commands.add_parser(
        "generate",
        help="generate images from a prompt and save them",
        description="Validate the request, show its cost, generate, then download and save "
        "every image (with a .json sidecar of how to reproduce it).",
    )
    generate.add_argument("prompt", help=spec_help("prompt"))
    add_request_options(generate)
    generate.add_argument(
        "--seed",
        type=spec_field("seed"),
        help=spec_help("seed", note="; default a random seed, reported"),
    )
    generate.add_argument(
        "--type",
        choices=image_type["enum"],
        help=f"the image type; default {image_type['default']}",
    )
    generate.add_argument(
        "--out", type=Path, default=Path("out"), metavar="DIR", help="default out/"
    )
    generate.add_argument(
        "--max-cost",
        type=budget("max_cost"),
        metavar="USD",
        help="refuse a request estimated dearer",
    )
    generate.add_argument(
        "--dry-run", action="store_true", help="print the request and its cost; send nothing"
    )
    generate.add_argument(
        "--gallery", action="store_true", help="also write DIR/index.html to look at them"
    )
    generate.add_argument(
        "--resend-unknown",
        action="store_true",
        help="send this request even though an earlier run was stopped with this very request "
        "on the wire (it may have been billed, so it may be paid twice)",
    )
    add_api_options(generate)
    add_output_options(generate)
    generate.set_defaults(run=cmd_generate)

    price = commands.add_parser(
        "price",
        help="print the exact cost of a request",
        description="The price of a request, from the spec's formula; nothing is sent.",
    )
    add_request_options(price)
    add_output_options(price)
    price.set_defaults(run=cmd_price)


def cmd_generate(args: argparse.Namespace, console: Console) -> int:
    fields = {
        "prompt": args.prompt,
        "width": args.width,
        "height": args.height,
        "steps": args.steps,
        "seed": args.seed,
        "image_num": args.image_num,
        "response_image_type": args.type,
    }
    body, cost = prepare_request(fields, args.max_cost)
    plan = (
        f"{body['image_num']} image(s), {body['width']}x{body['height']}, {body['steps']} steps, "
        f"seed {body['seed']}: estimated ${cost}"
    )
    if args.dry_run:
        console.info(plan)
        text = json.dumps(body, indent=2, ensure_ascii=False) + f"\nestimated cost: ${cost}"
        console.result({"request": body, "cost": cost}, text)
        return EXIT_OK
    out = writable_directory(args.out)  # before paying, not after
    with open_client(args.mock, **client_options(args)) as flux:  # the key and URL checked
        earlier = _earlier_calls(flux, out, body, console, resend=args.resend_unknown)
        console.info(plan)
        call = _Call(body, console)
        with call.interruptible():
            if earlier is not None:  # this very request was paid for by an earlier run
                generation = call.generation = earlier.generation()
                record = earlier.path
                console.info(
                    f"this request was paid for by an earlier run (task {generation.task_id}): "
                    "saving its images instead of paying again"
                )
            else:
                record = calls.begin(out, body, cost)
                generation = call.generation = _generated(flux, body, record)
                reach("generate.answered")
                calls.answered(record, generation)
            paths = _save(flux, generation, out, call)
            calls.done(record)
            reach("generate.saved")
    for path, image in zip(paths, generation.images, strict=True):
        size = path.stat().st_size
        each = generation.cost / len(generation.images)
        console.result(
            {
                "path": str(path),
                "task_id": generation.task_id,
                "index": image.index,
                "type": image.type,
                "width": body["width"],
                "height": body["height"],
                "steps": body["steps"],
                "seed": generation.seed,
                "bytes": size,
                "cost": each,
                "prompt": body["prompt"],
            },
            f"{path}  {body['width']}x{body['height']} {image.type.upper()}  {size:,} bytes  "
            f"task {generation.task_id}  ${each}",
        )
    console.info(f"task {generation.task_id}: {len(paths)} image(s), cost ${generation.cost}")
    if args.gallery:
        console.info(f"gallery: {write_gallery(out)}")
    if console.stdout_closed:
        console.error(
            f"novita-flux: stdout was closed before every result was printed; all "
            f"{len(paths)} image(s) of task {generation.task_id} are saved in {out}"
        )
        return EXIT_API_ERROR
    if call.interrupted:
        console.info("interrupted: what was paid for is saved")
        return EXIT_INTERRUPTED
    return EXIT_OK


class _Call:
    """One paid call as it goes, so that an interruption can say what it cost and what is left.

    From the moment the request may leave, a first Ctrl-C (or SIGTERM) is noted and the call is
    let finish, saving included: the API bills the task once it runs, whether or not we wait for
    its answer, and the answer holds the only links to the images. A second one stops at once,
    and the line it leaves says what was paid for and where it still is."""

    def __init__(self, body: dict[str, Any], console: Console) -> None:
        self.body = body
        self.console = console
        self.generation: Generation | None = None
        self.saved: list[Path] = []
        self.interrupted = False

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        def first(signum: signal.Signals) -> None:
            self.interrupted = True
            doing = "saving what it paid for" if self.generation else "waiting for its answer"
            self.console.info(
                f"{signum.name}: the call is paid for once its task runs: {doing} "
                "(again to stop at once)"
            )

        def again(signum: signal.Signals) -> None:
            raise KeyboardInterrupt

        try:
            with deferred(first, again):
                yield
        except KeyboardInterrupt:
            raise PaidButInterrupted(self.said()) from None

    def said(self) -> str:
        """What an interruption leaves behind, in one line."""
        generation = self.generation
        if generation is None:
            body = self.body
            return (
                "interrupted while the request was on the wire: it may have been billed (the "
                "API bills a task once it runs) and no answer was read, so no task id is known; "
                f"the request: seed {body['seed']}, {body['width']}x{body['height']}, "
                f"{body['steps']} steps, {body['image_num']} image(s)"
            )
        saved = {image_index(path.name) for path in self.saved}
        missing = [image for image in generation.images if image.index not in saved]
        kept = f"saved: {', '.join(map(str, self.saved))}; " if self.saved else ""
        return (
            f"interrupted after the call was paid for: {kept}not saved: "
            f"{paid_links(generation, missing)}"
        )


def _generated(flux: FluxSchnell, body: dict[str, Any], record: Path) -> Generation:
    """The call, its record dropped when the error says it cannot have been billed (refused
    before the task ran, or never sent): only a call that may have been billed is reported to
    the next run."""
    try:
        return flux.generate(**body)
    except NovitaError as error:
        if not error.possibly_billed:
            calls.done(record)
        raise


def _earlier_calls(
    flux: FluxSchnell, out: Path, body: dict[str, Any], console: Console, *, resend: bool
) -> calls.Call | None:
    """Finish what earlier runs into `out` left: save the images of calls that were answered,
    report those that may have been billed with no answer. Returns the answered call of this
    very request, if there is one (its images are this run's answer)."""
    same: calls.Call | None = None
    for call in calls.left_behind(out):
        if isinstance(call, str):
            console.error(f"novita-flux: {call}")
            continue
        identical = canonical(call.body) == canonical(body)
        if not call.answered:
            console.error(
                f"novita-flux: an earlier call may have been billed: it stopped while its request "
                f"({call.said()}) was on the wire, and no answer was read; its record is "
                f"{call.path} (delete it once you have checked)"
            )
            if identical and not resend:
                raise BadInput(
                    "this very request was on the wire when an earlier run stopped, and may "
                    "have been billed: --resend-unknown sends it again (and may pay twice)"
                )
            continue
        if identical:
            same = call
            continue
        generation = call.generation()
        try:
            flux.save(generation, out, metadata=True)
        except (NovitaError, OSError) as error:
            console.error(
                f"novita-flux: an earlier call was paid for and its images are not all saved "
                f"({error}): {paid_links(generation)}; its record is {call.path}"
            )
            continue
        calls.done(call.path)
        console.info(
            f"an earlier call was stopped after it was paid for (task {generation.task_id}): its "
            f"{len(generation.images)} image(s) are saved now"
        )
    return same


def _save(flux: FluxSchnell, generation: Generation, out: Path, call: _Call) -> list[Path]:
    progress = call.console.progress(len(generation.images), "images saved")

    def landed(path: Path) -> None:
        call.saved.append(path)
        progress.advance()

    try:
        return flux.save(generation, out, metadata=True, on_saved=landed)
    except SaveIncompleteError as error:
        raise PaidButNotSaved(f"the call was paid for, but {error}") from error
    except OSError as error:
        raise PaidButNotSaved(_not_saved(generation, error)) from error
    finally:
        progress.close()


def _not_saved(generation: Generation, error: OSError) -> str:
    return (
        f"the call was paid for (task {generation.task_id}) but saving failed: "
        f"{error.strerror or error}; its links: {paid_links(generation).partition('; ')[2]}"
    )


def cmd_price(args: argparse.Namespace, console: Console) -> int:
    cost = estimate_cost(args.width, args.height, args.steps, args.image_num)
    request = {name: getattr(args, name) for name in REQUEST_DEFAULTS}
    console.result({**request, "cost": cost, "currency": pricing().currency}, f"${cost}")
    return EXIT_OK
