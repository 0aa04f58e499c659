"""`make demo`: the documentation's example request, generated offline against the reference
server by the CLI, with the request read from the spec's own example (never typed twice)."""

from __future__ import annotations

import sys

from novita_flux._cli import main
from novita_flux._spec import GENERATE, request_example


def example_argv(out: str = "out") -> list[str]:
    example = request_example(GENERATE)
    argv = ["generate", example["prompt"], "--mock", "--out", out]
    for field in ("width", "height", "steps", "seed"):
        argv += [f"--{field}", str(example[field])]
    return [*argv, "--image-num", str(example["image_num"])]


if __name__ == "__main__":
    sys.exit(main(example_argv(*sys.argv[1:])))
