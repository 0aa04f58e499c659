"""`batch` input files of any content: arbitrary bytes, any JSON value per line, deep nesting,
huge numbers, lone surrogates, and valid requests among them. Each bad line is reported with its
number, every good line runs and is saved, and the command ends as documented.

What a line should be is judged here from the input format (README: one JSON object per line,
blank and `#` lines skipped, a byte-order mark allowed) and from the spec's request schema, read
by an independent validator (jsonschema), not by the client's own checks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from novita_flux._cli._options import REQUEST_DEFAULTS
from novita_flux._request import NONE_MEANS_DEFAULT
from novita_flux.testing import ReferenceServer
from tests.fuzz.budget import fuzz
from tests.fuzz.conftest import Inputs, OutsideAttempts
from tests.fuzz.test_cli_argv import Terminal, check_contract
from tests.fuzz.values import json_values
from tests.strategies import FIELDS, REQUEST_SCHEMA, requests_with_one_bad_field

FUZZ = fuzz(0.5)
JUDGE = jsonschema.Draft7Validator(REQUEST_SCHEMA)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def small_requests() -> st.SearchStrategy[dict[str, Any]]:
    """Valid requests that are quick to serve: the smallest images, any prompt, seed, type."""
    return st.fixed_dictionaries(
        {"prompt": st.text(min_size=1, max_size=30).filter(str.strip)},
        optional={
            "width": st.just(64),
            "height": st.sampled_from([64, 64.0]),  # a whole float is the integer JSON meant
            "steps": st.integers(1, 4),
            "seed": st.integers(0, 2**32 - 1),
            "response_image_type": st.sampled_from(FIELDS["response_image_type"]["enum"]),
        },
    ).map(lambda request: {"width": 64, "height": 64, **request})


def _dumped(value: Any, ascii_only: bool) -> bytes:
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def nested(depth: int, opener: str) -> bytes:
    closer = {"[": "]", '{"a":': "}"}[opener]
    return (opener * depth + "1" + closer * depth).encode()


LINE_KINDS = {
    "valid": st.builds(_dumped, small_requests(), st.booleans()),
    "one bad field": st.builds(
        _dumped, requests_with_one_bad_field().map(lambda pair: pair[1]), st.just(True)
    ),
    "any JSON": st.builds(_dumped, json_values(), st.booleans()),
    "any bytes": st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b" ")),
    "deep": st.builds(
        nested, st.sampled_from([900, 990, 1100, 50_000]), st.sampled_from(["[", '{"a":'])
    ),
    "huge numbers": st.sampled_from(
        [
            b"1e999",
            b"9" * 5000,
            b'{"prompt": "x", "width": 1e999}',
            b'{"prompt": "x", "seed": 99999999999999999999999999999}',
            b'{"prompt": "x", "steps": -1e-400}',
            b'{"prompt": "x", "width": NaN}',
            b'{"prompt": "x", "width": 64, "height": 64, "image_num": 1.0000000000000001}',
        ]
    ),
    "lone surrogate": st.sampled_from(
        [b'{"prompt": "\\ud800"}', b'{"prompt": "caf\\udce9"}', b'{"\\udfff": 1, "prompt": "x"}']
    ),
    "blank or comment": st.sampled_from([b"", b"   ", b"\t", b"# a comment", b"  # indented"]),
}


def line_is(raw: bytes, first: bool = False) -> str:
    """What the input format and the spec make of a line: skipped, valid or invalid (`first`:
    the file's first line, where a byte-order mark is allowed)."""
    if first:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return "invalid"
    if not text or text.startswith("#"):
        return "skipped"
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "invalid"
    if not isinstance(value, dict) or LONE_SURROGATE.search(json.dumps(value, ensure_ascii=False)):
        return "invalid"
    # What the line leaves out takes the client's defaults (README); a seed or type of null
    # asks for them too.
    given = {k: v for k, v in value.items() if v is not None or k not in NONE_MEANS_DEFAULT}
    request = {**REQUEST_DEFAULTS, "seed": 1, "response_image_type": "png", **given}
    return "valid" if JUDGE.is_valid(request) else "invalid"


@pytest.fixture
def api(
    novita_server: ReferenceServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> ReferenceServer:
    monkeypatch.setenv("NOVITA_API_KEY", novita_server.api_key)
    monkeypatch.setenv("NOVITA_BASE_URL", novita_server.url)
    monkeypatch.chdir(tmp_path)
    return novita_server


@FUZZ
@given(
    lines=st.lists(
        st.sampled_from(sorted(LINE_KINDS)).flatmap(lambda kind: LINE_KINDS[kind]), max_size=8
    ),
    bom=st.booleans(),
    quiet=st.booleans(),
)
def test_each_bad_line_is_reported_by_number_and_every_good_line_runs(
    lines: list[bytes],
    bom: bool,
    quiet: bool,
    api: ReferenceServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offline: OutsideAttempts,
    inputs: Inputs,
) -> None:
    api.faults.reset()
    offline.clear()
    run_dir = Path(tmp_path / f"run-{len(list(tmp_path.iterdir()))}")
    run_dir.mkdir()
    source = run_dir / "input.jsonl"
    source.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + b"\n")
    expected = {n: line_is(raw, n == 1 and not bom) for n, raw in enumerate(lines, start=1)}
    argv = ["batch", str(source), "--out", str(run_dir / "out"), "--images-per-minute", "0"]
    ran = Terminal(monkeypatch).run([*argv, *(["--quiet"] if quiet else [])])
    kinds = {kind for kind in expected.values() if kind != "skipped"}
    inputs.took("batch input file", f"exit {ran.code}, {'+'.join(sorted(kinds)) or 'empty'}")

    check_contract(ran, api, offline)
    manifest = [json.loads(line) for line in (run_dir / "out" / "manifest.jsonl").open()]
    listed = {entry["line"]: entry for entry in manifest}
    assert set(listed) == {n for n, kind in expected.items() if kind != "skipped"}, manifest
    for number, entry in listed.items():
        if expected[number] == "valid":
            assert entry["status"] == "saved", (number, entry)
            assert entry["files"], entry
        else:
            assert entry["status"] == "invalid", (number, lines[number - 1], entry)
            assert entry["error"]["message"], entry
            if not quiet:
                assert any(said.startswith(f"line {number}: ") for said in ran.said), ran.said
    valid = [n for n, kind in expected.items() if kind == "valid"]
    assert len(api.faults.billed) == len(valid)
    if valid and len(valid) == len(listed):
        assert ran.code == 0, ran
    elif len(valid) < len(listed):
        assert ran.code != 0, ran


def test_lines_nested_deeper_than_any_request_are_reported_and_the_others_run(
    api: ReferenceServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offline: OutsideAttempts,
) -> None:
    """Found by this fuzz (deep profile): a line nested ~900 levels parses, then fails in what
    the CLI does next (a RecursionError printing or recording it)."""
    lines = [nested(depth, opener) for depth in (65, 900, 990, 5000) for opener in ("[", '{"a":')]
    source = tmp_path / "deep.jsonl"
    source.write_bytes(b"\n".join([*lines, b'{"prompt": "a fox", "width": 64, "height": 64}']))
    argv = ["batch", str(source), "--out", str(tmp_path / "out"), "--images-per-minute", "0"]
    ran = Terminal(monkeypatch).run(argv)
    check_contract(ran, api, offline)
    for number in range(1, len(lines) + 1):
        assert f"line {number}: not a request: nested more than 64 levels deep" in ran.said
    assert any(
        said.startswith(f"line {len(lines) + 1}: saved ") for said in ran.out.decode().splitlines()
    )
    assert len(api.faults.billed) == 1


def test_a_line_holding_a_lone_surrogate_is_reported_and_the_lines_after_it_run(
    api: ReferenceServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    offline: OutsideAttempts,
) -> None:
    """Issue 20: `{"prompt": "\\ud800"}` crashed the batch in its ledger, after the file was
    read, and the valid lines after it never ran."""
    source = tmp_path / "surrogates.jsonl"
    source.write_bytes(
        b'{"prompt": "\\ud800"}\n{"\\udce9": 1, "prompt": "x"}\n'
        b'{"prompt": "a fox", "width": 64, "height": 64}\n'
    )
    argv = ["batch", str(source), "--out", str(tmp_path / "out"), "--images-per-minute", "0"]
    ran = Terminal(monkeypatch).run(argv)
    check_contract(ran, api, offline)
    assert ran.said[0].startswith("line 1: prompt: '\\ud800' holds U+D800 at character 1")
    assert ran.said[1].startswith("line 2: \udce9: unknown field")
    assert "line 2: \\udce9: unknown field" in ran.err  # escaped on a terminal
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").open()]
    assert [entry["status"] for entry in manifest] == ["invalid", "invalid", "saved"]
    assert manifest[0]["request"] == {"prompt": "\ud800"}  # kept as the line said it
    assert len(api.faults.billed) == 1
