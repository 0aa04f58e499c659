"""Reading a batch's input: one JSON object per line, as people write such files.

A UTF-8 byte-order mark is skipped, blank lines and `#` comment lines are ignored, and each line
is decoded on its own, so a line that is not UTF-8 or not JSON is reported by its number while
the others still run. The file is read as a stream: its size never matters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from novita_flux._cli._common import BadInput

MAX_DEPTH = 64
_TOO_DEEP = object()


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a parsed JSON value nests more than `limit` levels (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend(
                (child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)
            )
    return False


def read_requests(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, the parsed value, None) for each request line, or (number, raw text,
    why it is not a request)."""
    try:
        source = path.open("rb")
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error.strerror or error}") from None
    with source:
        for number, raw in enumerate(source, start=1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                yield number, raw.decode("utf-8", "replace").strip(), f"not UTF-8 ({error.reason})"
                continue
            if not text or text.startswith("#"):
                continue
            try:
                value = json.loads(text)
            except ValueError as error:
                yield number, text, f"not valid JSON ({error})"
                continue
            except RecursionError:  # Python's parser gives up past ~1,000 levels of nesting
                value = _TOO_DEEP
            if value is _TOO_DEEP or _deeper_than(value, MAX_DEPTH):
                # What is kept of a line is written and read again (ledger, manifest, gallery),
                # each time by code with the same limit: a request is flat, so no line that
                # nests this deep is one, and it is refused here, once.
                yield number, text, f"not a request: nested more than {MAX_DEPTH} levels deep"
                continue
            if not isinstance(value, dict):
                yield number, value, f"not a JSON object of request fields: {text[:60]}"
                continue
            yield number, value, None
