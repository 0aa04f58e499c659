"""The commands and their options: generate, batch, price, serve-mock."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from novita_flux._cli import _verify
from novita_flux._cli._batch import run_batch
from novita_flux._cli._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BadInput,
    info,
    open_client,
)
from novita_flux._constants import API_KEY_ENV, DEFAULT_HEIGHT, DEFAULT_STEPS, DEFAULT_WIDTH
from novita_flux._errors import (
    BudgetExceededError,
    MissingAPIKeyError,
    NovitaError,
    ValidationError,
)
from novita_flux._models import Generation
from novita_flux._progress import Progress
from novita_flux._request import as_budget, estimate_cost, field_schema, prepare_request
from novita_flux._version import __version__


def describe_image_line(path: Path, generation: Generation, index: int) -> str:
    request = generation.request
    image = generation.images[index]
    size = path.stat().st_size
    return (
        f"{path}  {request['width']}x{request['height']} {image.type.upper()}  "
        f"{size:,} bytes  task {generation.task_id}  ${generation.cost / len(generation.images)}"
    )


# --- commands -----------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
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
    info(
        f"{body['image_num']} image(s), {body['width']}x{body['height']}, {body['steps']} steps, "
        f"seed {body['seed']}: estimated ${cost}"
    )
    if args.dry_run:
        print(json.dumps(body, indent=2, ensure_ascii=False))
        print(f"estimated cost: ${cost}")
        return EXIT_OK
    with open_client(args.mock) as flux:
        generation = flux.generate(**body)
        progress = Progress(len(generation.images), "images saved")
        try:
            paths = flux.save(
                generation, args.out, metadata=True, on_saved=lambda _: progress.advance()
            )
        finally:
            progress.close()
    for index, path in enumerate(paths):
        print(describe_image_line(path, generation, index))
    print(f"task {generation.task_id}: {len(paths)} image(s), cost ${generation.cost}")
    return EXIT_OK


def cmd_price(args: argparse.Namespace) -> int:
    print(f"${estimate_cost(args.width, args.height, args.steps, args.image_num)}")
    return EXIT_OK


def cmd_serve_mock(args: argparse.Namespace) -> int:
    try:
        from novita_flux.testing import create_app, serve
    except ImportError as error:
        raise BadInput(f"serve-mock: {error}") from None
    app = create_app(
        api_key=args.api_key,
        image_url_ttl=args.image_url_ttl,
        images_per_minute=args.images_per_minute,
        latency=args.latency,
        profile=args.profile,
    )
    info(
        f"reference server on http://{args.host}:{args.port} (API key {args.api_key!r}); "
        "Ctrl-C stops it"
    )
    serve(app, host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    return run_batch(args)


# --- parsing ------------------------------------------------------------------------------------


def _budget(text: str) -> Decimal:
    try:
        return as_budget(text)
    except ValidationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="novita-flux",
        description="Novita AI FLUX.1 [schnell] text to image, from the command line.",
        epilog=f"The API key is read from {API_KEY_ENV}. Exit status: 0 success, 1 API error, "
        "2 invalid input (nothing was sent).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    image_type = field_schema("response_image_type")

    generate = commands.add_parser(
        "generate",
        help="generate images from a prompt and save them",
        description="Validate the request, show its cost, generate, then download and save "
        "every image (with a .json sidecar of how to reproduce it).",
    )
    generate.add_argument("prompt")
    generate.add_argument("--width", type=int, default=DEFAULT_WIDTH)
    generate.add_argument("--height", type=int, default=DEFAULT_HEIGHT)
    generate.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    generate.add_argument("--seed", type=int, help="default: a random seed, reported")
    generate.add_argument("-n", "--image-num", type=int, default=1)
    generate.add_argument(
        "--type", choices=image_type["enum"], help=f"default: {image_type['default']}"
    )
    generate.add_argument("--out", type=Path, default=Path("out"), help="default: out/")
    generate.add_argument("--max-cost", type=_budget, metavar="USD", help="refuse if dearer")
    generate.add_argument("--dry-run", action="store_true", help="print request and cost only")
    generate.add_argument("--mock", action="store_true", help="use the offline reference server")
    generate.set_defaults(run=cmd_generate)

    batch = commands.add_parser(
        "batch",
        help="generate from a JSONL file, resumable",
        description="One JSON object per line: 'prompt' plus any of width, height, steps, "
        "seed, image_num, response_image_type. Images are saved as they arrive and "
        "DIR/manifest.jsonl records every line; running the same command again resumes: "
        "finished lines are skipped, failed and missing ones retried, nothing paid twice.",
    )
    batch.add_argument("file", type=Path, metavar="FILE.jsonl")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR")
    batch.add_argument("--concurrency", type=int, default=4)
    batch.add_argument(
        "--images-per-minute",
        type=int,
        help="pace requests to this many images per rolling minute (default: the API's "
        "documented limit; unlimited with --mock; 0 turns pacing off)",
    )
    batch.add_argument("--max-total-cost", type=_budget, metavar="USD")
    batch.add_argument("--mock", action="store_true", help="use the offline reference server")
    batch.add_argument(
        "--resend-unknown",
        action="store_true",
        help="send again the requests that may have been billed (in flight when a run died, a "
        "timeout after sending, a server error after the task may have run): they may be "
        "paid twice",
    )
    batch.add_argument(
        "--regenerate-expired",
        action="store_true",
        help="generate again paid requests whose links expired before their images were saved "
        "(pays again)",
    )
    batch.set_defaults(run=cmd_batch)

    price = commands.add_parser("price", help="print the exact cost of a request")
    price.add_argument("--width", type=int, required=True)
    price.add_argument("--height", type=int, required=True)
    price.add_argument("--steps", type=int, required=True)
    price.add_argument("-n", "--image-num", type=int, default=1)
    price.set_defaults(run=cmd_price)

    serve = commands.add_parser(
        "serve-mock", help="run the offline reference server in the foreground"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--api-key", default="test-key")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds added per call")
    serve.add_argument("--image-url-ttl", type=int, default=3600)
    serve.add_argument("--images-per-minute", type=int, default=None)
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--profile",
        choices=("documented", "observed"),
        default="documented",
        help="answer as the docs page draws it, or as the real API was seen to (default: "
        "documented)",
    )
    serve.set_defaults(run=cmd_serve_mock)
    _verify.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        info("novita-flux: interrupted")
        return EXIT_INTERRUPTED
    except MissingAPIKeyError as error:
        info(f"novita-flux: {error}; or add --mock to run against the offline reference server")
        return EXIT_BAD_INPUT
    except (ValidationError, BudgetExceededError, BadInput) as error:
        info(f"novita-flux: {error}")
        return EXIT_BAD_INPUT
    except NovitaError as error:
        info(f"novita-flux: {type(error).__name__}: {error}")
        return EXIT_API_ERROR
    return code
