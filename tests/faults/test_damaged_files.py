"""Every file a batch writes x every damage, after a clean run and after a killed one: deleted,
emptied, cut in half, turned to garbage, one page of it garbled. The next run must carry on
without paying twice or forgetting anything paid for: no one damaged file may cost money."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from novita_flux.testing import ReferenceServer
from tests.faults.conftest import batch_argv
from tests.faults.harness import History, assert_spoke_plainly, lines_file
from tests.faults.invariant import Disk, Run

pytestmark = pytest.mark.slow

FOUR = [
    {"prompt": f"damage {name}", "width": 64, "height": 64, "steps": 1, "seed": seed, **extra}
    for name, seed, extra in (("a", 11, {}), ("b", 12, {"image_num": 2}), ("c", 13, {}),
                              ("d", 14, {}))
]  # fmt: skip

# Where each file lies in a batch directory (a name, or the first match of a pattern).
FILES: dict[str, str] = {
    "ledger": "ledger.sqlite3",
    "ledger-wal": "ledger.sqlite3-wal",
    "ledger-shm": "ledger.sqlite3-shm",
    "journal": "ledger.journal.jsonl",
    "manifest": "manifest.jsonl",
    "sidecar": "*.png.json",
    "image": "*_0.png",
    "lock": ".novita-flux.lock",
    "leftover": ".novita-left-behind.part",  # a temporary file a killed run left
    "gallery": "index.html",
}


def _page(data: bytes, noise: random.Random) -> bytes:
    """One page (4 KiB, or an eighth of a small file) in the middle made garbage."""
    size = 4096 if len(data) >= 3 * 4096 else max(len(data) // 8, 1)
    at = (len(data) // 2) // size * size
    return data[:at] + noise.randbytes(size) + data[at + size :]


DAMAGES: dict[str, Callable[[bytes, random.Random], bytes | None]] = {
    "deleted": lambda data, noise: None,
    "empty": lambda data, noise: b"",
    "halved": lambda data, noise: data[: len(data) // 2],
    "garbage": lambda data, noise: noise.randbytes(max(len(data), 512)),
    "page": _page,
}


def damage(directory: Path, which: str, how: str) -> None:
    pattern = FILES[which]
    found = sorted(directory.glob(pattern)) if "*" in pattern else [directory / pattern]
    path = found[0] if found else directory / pattern.replace("*", "x")
    data = path.read_bytes() if path.exists() else b""
    damaged = DAMAGES[how](data, random.Random(f"{which}:{how}"))
    if damaged is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(damaged)


@attrs.frozen
class Template:
    directory: Path
    source: Path
    runs: tuple[Run, ...]


def _prepared(server: ReferenceServer, root: Path, *, killed: bool) -> Template:
    out = root / "out"
    history = History(server, out)
    if killed:
        # A clean run of two lines (so there is a manifest), then all four, killed with the
        # third one's answer in hand and not yet recorded.
        source = lines_file(root / "in.jsonl", FOUR[:2])
        assert history.cli(*batch_argv(source, out)).status == 0
        source = lines_file(root / "in.jsonl", FOUR)
        struck = history.cli(*batch_argv(source, out), fault=("batch.answered", 1, "SIGKILL"))
        assert struck.status is None, struck.stderr
    else:
        source = lines_file(root / "in.jsonl", FOUR)
        assert history.cli(*batch_argv(source, out)).status == 0
    (out / FILES["leftover"]).write_bytes(b"half an image")
    return Template(out, source, tuple(history.runs))


@pytest.fixture(scope="module")
def templates(
    server: ReferenceServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Template]:
    return {
        "after a clean run": _prepared(server, tmp_path_factory.mktemp("clean"), killed=False),
        "after a killed run": _prepared(server, tmp_path_factory.mktemp("killed"), killed=True),
    }


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("which", FILES)
@pytest.mark.parametrize("state", ["after a clean run", "after a killed run"])
def test_no_damaged_file_makes_a_batch_pay_twice_or_forget_what_it_paid_for(
    state: str,
    which: str,
    how: str,
    server: ReferenceServer,
    templates: dict[str, Template],
    tmp_path: Path,
) -> None:
    template = templates[state]
    out = tmp_path / "out"
    shutil.copytree(template.directory, out)
    source = lines_file(tmp_path / "in.jsonl", FOUR)
    damage(out, which, how)
    history = History(server, out)
    history.runs.extend(template.runs)
    resumed = history.cli(*batch_argv(source, out))
    assert_spoke_plainly(resumed)
    assert resumed.status in (0, 1), resumed.stderr
    assert history.violations() == []
    states = Counter(r.state for r in Disk.read(out).records if r.source == "ledger")
    assert sum(states.values()) == len(FOUR), (states, resumed.stderr)
    assert set(states) <= {"saved", "unknown"}, (states, resumed.stderr)
    sent = {body["prompt"] for body in resumed.window.arrived if isinstance(body, dict)}
    if which == "image" and how != "page":  # a garbled page keeps head and tail: not seen
        assert states["saved"] >= 3
        assert (out / sorted(out.glob("*_0.png.json"))[0].stem).exists()
        assert "downloading it again" in resumed.stderr
    if state == "after a clean run":
        assert sent == set(), resumed.stderr  # everything was paid for and saved already
    else:
        assert sent <= {"damage d"}, resumed.stderr  # only what was never sent
        assert states["unknown"] <= 1  # the one in flight when the run was killed
    assert not list(out.glob(".novita-*.part"))
