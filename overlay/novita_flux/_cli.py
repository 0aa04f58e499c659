"""The `novita-flux` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from novita_flux._errors import NovitaError, ValidationError
from novita_flux._request import estimate_cost
from novita_flux._version import __version__

EXIT_API_ERROR = 1
EXIT_BAD_INPUT = 2


def _price(args: argparse.Namespace) -> int:
    cost = estimate_cost(args.width, args.height, args.steps, args.image_num)
    print(f"${cost}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="novita-flux", description="Novita AI FLUX.1 [schnell] text to image."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    price = commands.add_parser("price", help="print the exact cost of a request")
    price.add_argument("--width", type=int, required=True)
    price.add_argument("--height", type=int, required=True)
    price.add_argument("--steps", type=int, required=True)
    price.add_argument("-n", "--image-num", type=int, default=1)
    price.set_defaults(run=_price)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ValidationError as error:
        print(f"novita-flux: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NovitaError as error:
        print(f"novita-flux: {error}", file=sys.stderr)
        return EXIT_API_ERROR
    return code
