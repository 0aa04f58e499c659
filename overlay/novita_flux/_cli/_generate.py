"""`novita-flux generate` and `novita-flux price`: one request, priced, sent and saved."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from novita_flux._cli import _calls as calls
from novita_flux._cli._balance import check_balance
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
    directory,
    spec_field,
    spec_help,
    writable_directory,
)
from novita_flux._cli._signals import deferred
from novita_flux._client import FluxSchnell
from novita_flux._errors import (
    APIStatusError,
    NovitaError,
    ResponseValidationError,
    SaveIncompleteError,
)
from novita_flux._faultpoints import reach
from novita_flux._format import usd
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
        help=spec_help("seed", note="; default a random seed, drawn for each run and reported"),
    )
    generate.add_argument(
        "--type",
        choices=image_type["enum"],
        help=f"the image type; default {image_type['default']}",
    )
    generate.add_argument(
        "--out", type=directory, default=Path("out"), metavar="DIR", help="default out/"
    )
    generate.add_argument(
        "--max-cost",
        type=budget,
        metavar="USD",
        help="refuse a request estimated dearer",
    )
    generate.add_argument(
        "--check-balance",
        action="store_true",
        help="read the account's balance first, and refuse a request it cannot pay for",
    )
    generate.add_argument(
        "--dry-run",
        action="store_true",
        help="print the exact request and its cost; send nothing. Without --seed, the seed shown "
        "is drawn for the dry run (a run without --seed draws its own): add it as --seed to "
        "send that very request",
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
        f"seed {body['seed']}: estimated ${usd(cost)}"
    )
    if args.dry_run:
        return _dry_run(body, cost, plan, drawn=args.seed is None, console=console)
    out = writable_directory(args.out)  # before paying, not after
    with open_client(args.mock, **client_options(args)) as flux:  # the key and URL checked
        earlier = _earlier_calls(flux, out, body, console, resend=args.resend_unknown)
        console.info(plan)
        call = _Call(body, console)
        broken: ResponseValidationError | None = None
        with call.interruptible():
            if earlier is not None:  # this very request was paid for by an earlier run
                generation = call.generation = earlier.generation()
                record = call.record = earlier.path
                console.info(
                    f"this request was paid for by an earlier run (task {generation.task_id}): "
                    "saving its images instead of paying again"
                )
            else:
                if args.check_balance:
                    check_balance(flux, cost, console, "request")
                record = call.record = _begin(out, body, cost)
                try:
                    generation = _generated(flux, body, record)
                except ResponseValidationError as error:
                    if error.generation is None:  # no link to save: its line says the task
                        raise
                    generation, broken = error.generation, error  # paid: save what it holds
                call.generation = generation
                reach("generate.answered")
                try:
                    calls.answered(record, generation)
                except OSError as error:  # saving may still work: the images are what counts
                    console.error(
                        f"novita-flux: cannot record the answer in {record.name} "
                        f"({error.strerror or error}); saving its images: "
                        f"{paid_links(generation)}"
                    )
            paths = _save(flux, generation, out, call)
            calls.done(record)
            reach("generate.saved")
    for path, image in zip(paths, generation.images, strict=True):
        size = path.stat().st_size
        each = generation.cost / generation.images_paid_for
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
            f"task {generation.task_id}  ${usd(each)}",
        )
    console.info(f"task {generation.task_id}: {len(paths)} image(s), cost ${usd(generation.cost)}")
    # A paid answer that is not what was paid for: all of it is saved, and it is said.
    problem = None
    if broken is not None:
        problem = f"{type(broken).__name__}: {broken}"
    elif len(generation.images) != generation.images_paid_for:
        problem = short_answer(generation)
    if args.gallery:
        try:
            console.info(f"gallery: {write_gallery(out)}")
        except OSError as error:
            console.error(
                f"novita-flux: every image is saved, but the gallery could not be written "
                f"({error.strerror or error})"
            )
            return EXIT_API_ERROR
    if console.stdout_closed:
        console.error(
            f"novita-flux: stdout was closed before every result was printed; all "
            f"{len(paths)} image(s) of task {generation.task_id} are saved in {out}"
        )
        return EXIT_API_ERROR
    if problem is not None:
        console.error(f"novita-flux: {problem}; what it holds is saved in {out}")
    if call.interrupted:
        if problem is None:  # said even with --quiet: the status alone would not say why
            console.error(
                f"novita-flux: interrupted after the call finished: task {generation.task_id} "
                f"was paid for and its {len(paths)} image(s) are saved in {out}"
            )
        return EXIT_INTERRUPTED
    return EXIT_OK if problem is None else EXIT_API_ERROR


def short_answer(generation: Generation) -> str:
    """One line for an answer that holds another number of images than were paid for."""
    return (
        f"the API answered {len(generation.images)} image(s) for the "
        f"{generation.images_paid_for} paid for (task {generation.task_id}): a contract deviation"
    )


def _dry_run(
    body: dict[str, Any], cost: Decimal, plan: str, *, drawn: bool, console: Console
) -> int:
    """The request exactly as it would be sent. A seed drawn here is not the one a run without
    --seed would send (each run draws its own), so the output says so, and how to send this
    very request."""
    text = json.dumps(body, indent=2, ensure_ascii=False) + f"\nestimated cost: ${usd(cost)}"
    if drawn:
        said = (
            f"seed {body['seed']} was drawn for this dry run: a run without --seed draws its "
            f"own; add --seed {body['seed']} to send exactly this request"
        )
        plan += f" (seed drawn for this dry run: --seed {body['seed']} sends this very request)"
        text += f"\n{said}"
    console.info(plan)
    console.result({"request": body, "cost": cost, "seed_drawn": drawn}, text)
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
        self.error: NovitaError | None = None  # what the API answered instead, if it did
        self.record: Path | None = None  # the call's record in OUT (see _calls)
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
        except KeyboardInterrupt as stop:
            self._heard(stop)
            raise PaidButInterrupted(self.said()) from None

    def _heard(self, stop: KeyboardInterrupt) -> None:
        """The answer the client read as the second Ctrl-C landed (it puts it on the exception):
        kept in the call's record, so that the next run saves its images instead of reporting
        a call with no answer; a refusal that cost nothing leaves no record behind."""
        generation, error = getattr(stop, "generation", None), getattr(stop, "error", None)
        if self.generation is None and isinstance(generation, Generation):
            self.generation = generation
            if self.record is not None:
                with contextlib.suppress(OSError):  # the line said still gives the links
                    calls.answered(self.record, generation)
        elif isinstance(error, APIStatusError):  # an answer, not the client's "no answer"
            self.error = error
            if self.record is not None and not error.possibly_billed:
                calls.done(self.record)

    def said(self) -> str:
        """What an interruption leaves behind, and what to do about it, in one line."""
        generation, error = self.generation, self.error
        if error is not None and not error.possibly_billed:
            return f"interrupted; the API had refused the call, which cost nothing: {error}"
        if generation is None:
            body = self.body
            heard = (
                f"the API answered {type(error).__name__}: {error}"
                if error is not None
                else "no answer was read, so no task id is known"
            )
            return (
                "interrupted while the request was on the wire: it may have been billed (the "
                f"API bills a task once it runs) and {heard}; the request: seed {body['seed']}, "
                f"{body['width']}x{body['height']}, {body['steps']} steps, "
                f"{body['image_num']} image(s); your Novita account's billing shows whether its "
                f"task ran{self._kept()}"
            )
        saved = {image_index(path.name) for path in self.saved}
        missing = [image for image in generation.images if image.index not in saved]
        kept = f"saved: {', '.join(map(str, self.saved))}; " if self.saved else ""
        again = (
            "; the same command again saves them while the links last (a download costs nothing)"
            if self.record is not None and missing
            else ""
        )
        return (
            f"interrupted after the call was paid for: {kept}not saved: "
            f"{paid_links(generation, missing)}{again}"
        )

    def _kept(self) -> str:
        if self.record is None:
            return ""
        return (
            f"; its record {self.record} makes the next `novita-flux generate` into "
            f"{self.record.parent} report it, and not send it again unless given "
            "--resend-unknown (which may pay twice)"
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


def _begin(out: Path, body: dict[str, Any], cost: object) -> Path:
    """Record the call before its request may leave; if that cannot be done, it does not."""
    try:
        return calls.begin(out, body, cost)
    except OSError as error:
        raise BadInput(
            f"--out {out}: cannot record the call before sending it "
            f"({error.strerror or error}); nothing was sent"
        ) from None


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
    console.result({**request, "cost": cost, "currency": pricing().currency}, f"${usd(cost)}")
    return EXIT_OK
