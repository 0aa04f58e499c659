"""How values are written for people (novita_flux._format): money exact and the same way
everywhere the command line shows it, and text cut to fit."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from novita_flux._cli import main
from novita_flux._format import encodable, shortened, usd, without_bidi_controls
from novita_flux.testing import ReferenceServer

AMOUNT = re.compile(r"\$([0-9][0-9.]*[0-9]|[0-9])")


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0", "0.00"),
        ("0E-12", "0.00"),
        ("-0", "0.00"),
        ("0.003", "0.003"),
        ("0.0037500", "0.00375"),
        ("0.00002343750", "0.0000234375"),
        ("0.0000029296875", "0.0000029296875"),
        ("1E-7", "0.0000001"),
        ("2.4", "2.40"),
        ("1E+1", "10.00"),
        ("12.345", "12.345"),
    ],
)
def test_an_amount_is_the_shortest_exact_decimal_with_at_least_two_places(
    amount: str, shown: str
) -> None:
    assert usd(Decimal(amount)) == shown


@given(
    st.decimals(min_value=0, max_value=10**6, allow_nan=False, allow_infinity=False, places=None)
)
def test_an_amount_shown_reads_back_as_exactly_the_same_amount(amount: Decimal) -> None:
    shown = usd(amount)
    assert Decimal(shown) == amount  # nothing rounded away
    assert re.fullmatch(r"[0-9]+\.([0-9]{2}|[0-9]*[1-9])", shown), shown
    assert usd(Decimal(shown)) == shown  # one way to write each amount


def shown_amounts(text: str) -> list[str]:
    return AMOUNT.findall(text)


def test_every_amount_the_command_line_shows_is_written_one_way(
    api: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """price, generate, batch and verify: each figure is usd() of itself. The plan of verify
    multiplies prices by image counts (0.0000029296875 * 8 = 0.0000234375000) and shows
    refusals as $0; both were printed as they fell."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"prompt": "a", "width": 64, "height": 64, "image_num": 8}\n'
        '{"prompt": "b", "width": 320, "height": 320, "image_num": 3}\n'
    )
    commands = [
        ["price", "--width", "2048", "--height", "2048", "--steps", "100", "-n", "8"],
        ["price", "--json"],
        ["generate", "x", "--width", "320", "--height", "320", "-n", "3", "--out",
         str(tmp_path / "g")],
        ["generate", "x", "--width", "320", "--height", "320", "-n", "3", "--json", "--out",
         str(tmp_path / "g")],
        ["generate", "x", "--dry-run", "--max-cost", "0"],
        ["batch", str(source), "--out", str(tmp_path / "b"), "--images-per-minute", "0"],
        ["verify", "--dry-run"],
    ]  # fmt: skip
    seen = 0
    for argv in commands:
        main(argv)
        out, err = capsys.readouterr()
        for figure in shown_amounts(out + err):
            seen += 1
            assert figure == usd(Decimal(figure)), (argv[0], figure)
        if "--json" in argv:
            for cost in re.findall(r'"cost": "([^"]*)"', out):
                assert cost == usd(Decimal(cost)), (argv[0], cost)
    assert seen > 50  # the figures were found


@pytest.mark.parametrize(
    ("text", "limit", "short"),
    [("abc", 3, "abc"), ("abcd", 3, "..."), ("abcdefgh", 6, "abc..."), ("", 5, "")],
)
def test_shortened_keeps_text_up_to_the_limit_and_cuts_longer_text_with_dots(
    text: str, limit: int, short: str
) -> None:
    assert shortened(text, limit) == short
    assert len(shortened(text * 50, limit)) <= max(limit, 3)


def test_lone_surrogates_become_replacement_characters_and_the_rest_stays() -> None:
    assert encodable("caf\udce9 \ud800 🐯 é") == "caf\ufffd \ufffd 🐯 é"
    assert encodable("caf\udce9").encode("utf-8") == "caf\ufffd".encode()


def test_bidi_controls_are_replaced_so_nothing_after_them_is_reordered() -> None:
    text = "abc\u202edef\u2066g\u200fh\u061c"
    assert without_bidi_controls(text) == "abc\ufffddef\ufffdg\ufffdh\ufffd"
    assert without_bidi_controls("שלום, 夕焼け") == "שלום, 夕焼け"  # letters of any script stay
