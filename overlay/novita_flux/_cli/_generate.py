"""`novita-flux generate` and `novita-flux price`: one request, priced, sent and saved."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from novita_flux._cli._common import EXIT_OK, Console, client_options, open_client
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
from novita_flux._errors import NovitaError, SaveIncompleteError
from novita_flux._gallery import write_gallery
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
        console.info(plan)
        generation = flux.generate(**body)
        progress = console.progress(len(generation.images), "images saved")
        try:
            paths = flux.save(generation, out, metadata=True, on_saved=lambda _: progress.advance())
        except SaveIncompleteError as error:
            raise PaidButNotSaved(f"the call was paid for, but {error}") from error
        except OSError as error:
            raise PaidButNotSaved(_not_saved(generation, error)) from error
        finally:
            progress.close()
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
    return EXIT_OK


def _not_saved(generation: Generation, error: OSError) -> str:
    links = "; ".join(
        f"image {image.index} at {image.url}"
        + (f" until {image.expires_at.isoformat()}" if image.expires_at else "")
        for image in generation.images
    )
    return (
        f"the call was paid for (task {generation.task_id}) but saving failed: "
        f"{error.strerror or error}; its links: {links}"
    )


def cmd_price(args: argparse.Namespace, console: Console) -> int:
    cost = estimate_cost(args.width, args.height, args.steps, args.image_num)
    request = {name: getattr(args, name) for name in REQUEST_DEFAULTS}
    console.result({**request, "cost": cost, "currency": pricing().currency}, f"${cost}")
    return EXIT_OK
