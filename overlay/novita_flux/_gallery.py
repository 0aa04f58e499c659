"""`DIR/index.html`: every image saved in a directory on one static page, to look at rather than
read. It needs no network and no script: a grid of lazy-loaded images, each captioned with its
prompt, seed, size, steps, cost and task id; the lines that failed or may have been billed, with
their errors; and the totals.

What it shows is read from what the directory holds: each image's `.json` sidecar, and for a
batch the exported `manifest.jsonl` (its order, and its lines that produced no image). Every
piece of text comes from a prompt or a server, so all of it is escaped, its bidi controls are
replaced (a U+202E in a prompt would reverse what follows it), and each caption is isolated
(`dir="auto"`) and cut to a few lines, the whole text in its `title`.
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import attrs

from novita_flux._faultpoints import reach
from novita_flux._format import encodable, shortened, usd, without_bidi_controls
from novita_flux._images import EXTENSIONS, write_atomically
from novita_flux._states import INVALID, State

GALLERY_NAME: Final = "index.html"
# Characters of a caption shown on a card (a prompt may have 1024), and of a line's error.
CAPTION_CHARACTERS: Final = 140
ERROR_CHARACTERS: Final = 300
_IMAGE_SUFFIXES: Final = tuple(EXTENSIONS.values())
_PROBLEMS: Final = (State.FAILED, State.UNKNOWN, State.PAID, INVALID, State.PLANNED, State.SENDING)
_SAID: Final[dict[str, str]] = {
    State.FAILED: "failed (sent again by the next run)",
    State.UNKNOWN: "may have been billed (not sent again unless asked)",
    State.PAID: "paid for, images not all saved",
    INVALID: "not a valid request",
    State.PLANNED: "not sent yet",
    State.SENDING: "in flight when the run stopped",
}


@attrs.frozen
class Tile:
    file: str
    prompt: str
    seed: Any
    width: Any
    height: Any
    steps: Any
    cost: Decimal  # of this image
    task_id: str


@attrs.frozen
class Problem:
    line: Any
    status: str
    prompt: str
    error: str


def write_gallery(directory: Path) -> Path:
    """Write `directory/index.html` atomically; return its path. The manifest is read as a
    stream and the page written as one, so a batch of any size costs a few bytes a line."""
    rank: dict[str, int] = {}  # image file -> its line's place in the input
    problems: list[Problem] = []
    statuses: Counter[str] = Counter()
    for position, entry in enumerate(_manifest(directory / "manifest.jsonl")):
        status = str(entry.get("status"))
        statuses[status] += 1
        for name in entry.get("files") or ():
            rank.setdefault(str(name), position)
        if status in _PROBLEMS:
            problems.append(
                Problem(
                    entry.get("line"), status, _prompt_of(entry), _error_text(entry.get("error"))
                )
            )
    # In the input's order for a batch, then by name for anything else.
    tiles = sorted(_tiles(directory), key=lambda tile: (rank.get(tile.file, len(rank)), tile.file))
    target = directory / GALLERY_NAME
    # A directory's name may hold a byte that is not UTF-8 (a lone surrogate here).
    parts = _page(directory, tiles, problems, statuses)
    write_atomically(
        target,
        (part.encode("utf-8", "backslashreplace") for part in parts),
        ready=lambda: reach("gallery.written"),
    )
    return target


def _tiles(directory: Path) -> Iterator[Tile]:
    for sidecar in sorted(directory.glob("*.json")):
        image = sidecar.with_suffix("")  # x.png.json -> x.png
        if image.suffix not in _IMAGE_SUFFIXES or not image.is_file():
            continue
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            request = data["request"]
            count = int(request.get("image_num") or 1)
            cost = Decimal(str(data.get("cost_usd", "0"))) / count
        except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidOperation):
            continue  # a damaged sidecar costs its caption, not the page
        yield Tile(
            image.name,
            str(request.get("prompt", "")),
            data.get("seed"),
            request.get("width"),
            request.get("height"),
            request.get("steps"),
            cost,
            str(data.get("task_id", "")),
        )


def _manifest(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as lines:
        for raw in lines:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict):
                yield entry


def _prompt_of(entry: dict[str, Any]) -> str:
    for source in (entry.get("body"), entry.get("request")):
        if isinstance(source, dict) and "prompt" in source:
            return str(source["prompt"])
    return str(entry.get("request") or "")


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        kind, message = error.get("type"), error.get("message", "")
        return f"{kind}: {message}" if kind else str(message)
    return "" if error is None else str(error)


def _page(
    directory: Path, tiles: list[Tile], problems: list[Problem], statuses: Counter[str]
) -> Iterator[str]:
    def text(value: object) -> str:
        return html.escape(without_bidi_controls(encodable(str(value))), quote=True)

    def caption(value: str, limit: int, tag: str, attributes: str = "") -> str:
        """The text cut to `limit`, the whole of it in the title, its direction its own."""
        short = shortened(value, limit)
        whole = f' title="{text(value)}"' if short != value else ""
        return f'<{tag}{attributes} dir="auto"{whole}>{text(short)}</{tag}>'

    spent = sum((tile.cost for tile in tiles), Decimal(0))
    totals = [f"{len(tiles)} image(s)", f"${usd(spent)} spent on them"]
    totals += [f"{count} {_SAID.get(status, status)}" for status, count in statuses.items()
               if status in _PROBLEMS]  # fmt: skip
    figures = (
        # The file's own bytes, percent-encoded: its name may not be UTF-8.
        f'<figure><img src="{quote(os.fsencode(tile.file))}" alt="{text(tile.prompt)}" '
        f'loading="lazy" decoding="async" width="{text(tile.width)}" height="{text(tile.height)}">'
        f"<figcaption>{caption(tile.prompt, CAPTION_CHARACTERS, 'p', ' class=prompt')}"
        f"<p>seed {text(tile.seed)} · {text(tile.width)}x{text(tile.height)} · "
        f"{text(tile.steps)} steps · ${text(usd(tile.cost))}</p>"
        f"<p class=task>task {text(tile.task_id)}</p></figcaption></figure>\n"
        for tile in tiles
    )
    rows = "\n".join(
        f"<tr><td>{text(problem.line)}</td><td>{text(_SAID.get(problem.status, problem.status))}"
        f"</td>{caption(problem.prompt, CAPTION_CHARACTERS, 'td')}"
        f"{caption(problem.error, ERROR_CHARACTERS, 'td')}</tr>"
        for problem in problems
    )
    table = (
        "<h2>Lines without all their images</h2><table><thead><tr><th>line</th><th>status</th>"
        f"<th>prompt</th><th>error</th></tr></thead><tbody>{rows}</tbody></table>"
        if problems
        else ""
    )
    head, tail = (
        f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{text(directory.name or directory)} · novita-flux</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fafafa; }}
.totals {{ color: #555; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr));
         gap: 1rem; }}
figure {{ margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px;
          overflow: hidden; }}
img {{ display: block; width: 100%; height: auto; background: #eee; }}
figcaption {{ padding: .5rem .6rem; }}
figcaption p {{ margin: .2rem 0; overflow-wrap: anywhere; }}
.prompt {{ font-weight: 600; }}
.task {{ color: #777; font-size: 12px; }}
table {{ border-collapse: collapse; margin-top: .5rem; }}
td, th {{ border: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top;
          overflow-wrap: anywhere; }}
</style>
</head>
<body>
<h1>{text(directory.name or directory)}</h1>
<p class="totals">{text(" · ".join(totals))}</p>
<main class="grid">
""",
        f"""</main>
{table}
</body>
</html>
""",
    )
    yield head
    yield from figures
    yield tail
