"""The odd values every fuzz suite draws from: text a terminal can send, numbers written as text,
any Python value, JSON of any shape, and links with odd hosts.

Each strategy is built to reach the edges named in issue 20 on every run (they are sampled as
explicit members, not left to chance), and then anything else hypothesis likes.
"""

from __future__ import annotations

import math
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from hypothesis import strategies as st

# --- text -------------------------------------------------------------------------------------

# Every character, lone surrogates and control characters included; NUL aside, since no argv,
# environment variable or file name can hold one.
ANY_CHARACTER = st.characters(codec=None, exclude_characters="\x00")
CONTROLS = st.sampled_from(["\n", "\r", "\t", "\x1b[31m", "\x1b]0;title\x07", "\u202e", "\x7f"])
EDGE_TEXTS = (
    "",
    " ",
    "caf\udce9",  # `caf\xe9` from a Latin-1 terminal, read by Python under a UTF-8 locale
    "\ud800",
    "\udfff x",
    "x\ud83d",  # half of an emoji's surrogate pair
    "\u202eevil",
    "\x1b[2J",
    "line\nbreak",
    "-",
    "--",
    "-x",
    "x" * 5000,
    "虎" * 1025,
)


def any_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """Any str at all: what Python code may pass, lone surrogates and control characters too."""
    return st.sampled_from(EDGE_TEXTS) | st.text(ANY_CHARACTER, max_size=max_size) | CONTROLS


def terminal_text(max_size: int = 40) -> st.SearchStrategy[str]:
    """What argv can hold: any bytes but NUL decoded as Python decodes a command line (a byte
    that is not UTF-8 becomes a lone surrogate, U+DC80 to U+DCFF), or any valid Unicode."""
    from_bytes = st.binary(max_size=max_size).map(lambda raw: os.fsdecode(raw.replace(b"\0", b"")))
    unicode = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"))
    terminal = [text for text in EDGE_TEXTS if _argv_can_hold(text)]
    return st.sampled_from(terminal) | from_bytes | unicode.filter(lambda t: len(t) <= max_size)


def _argv_can_hold(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


# --- numbers, as a command line writes them -----------------------------------------------------

NUMBER_TEXTS = (
    "0",
    "1",
    "-1",
    "-0",
    "+4",
    " 4 ",
    "4.0",
    "4.5",
    "1e3",
    "1e12",
    "1e308",
    "1e309",
    "-1e309",
    "1e-400",
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    "-nan",
    "0x10",
    "1_000",
    "\uff14",  # a full-width 4
    "\uff11\uff12\uff18",  # a full-width 128
    "\u0663",  # an Arabic-Indic 3
    "",
    "9" * 5000,  # past Python's limit on the digits of an int read from text
    "4294967296",
    "18446744073709551616",
    "0.00075",
    "0.0000000001",
    "1E+2",
    "sNaN",
)


def number_text() -> st.SearchStrategy[str]:
    """Numbers as a user types them, valid and not: edges first, then any int or float."""
    return (
        st.sampled_from(NUMBER_TEXTS)
        | st.integers(-2, 2100).map(str)
        | st.integers().map(str)
        | st.floats().map(repr)
        | st.decimals(allow_nan=True).map(str)
    )


# --- any Python value -------------------------------------------------------------------------


class Odd:
    """An object no API expects; its str and repr work, its truth value does too."""

    def __repr__(self) -> str:
        return "<Odd>"


TIMEOUTS = st.sampled_from(
    [
        httpx.Timeout(None),
        httpx.Timeout(-1.0),
        httpx.Timeout(math.inf),
        httpx.Timeout(1e12),
        httpx.Timeout(math.nan),
        httpx.Timeout(5.0, read=None),
        httpx.Timeout(0.0),
        httpx.Timeout(5.0, connect=-1.0),
    ]
) | st.floats().map(lambda seconds: httpx.Timeout(seconds, pool=None))

SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2**63, -(2**63), 10**400, math.inf, -math.inf, math.nan, -0.0]),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity"), Decimal("1e-400")]),
    st.complex_numbers(),
    any_text(),
    st.binary(max_size=20),
    st.builds(Odd),
    st.builds(Path, any_text(10).filter(lambda t: "\x00" not in t)),
    TIMEOUTS,
    # Callables too, but ones that take any one argument without raising: a callback that
    # raises is the caller's own error, not the client's.
    st.sampled_from([str, repr, bool, type, Ellipsis, NotImplemented]),
)


def any_value() -> st.SearchStrategy[Any]:
    """Any Python value: scalars of every kind, containers of them, and odd objects."""
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.tuples(inner, inner)
            | st.dictionaries(any_text(8), inner, max_size=3)
            | st.frozensets(st.integers(), max_size=3)
        ),
        max_leaves=6,
    )


# --- JSON of any shape ------------------------------------------------------------------------


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from([10**30, -(10**30), 2**64, 1e308, -0.0, 0.5]),
        st.floats(allow_nan=False, allow_infinity=False),
        any_text(),
    )


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON value (Python's json module's view: lone surrogates in strings are allowed)."""
    return st.recursive(
        json_scalars(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(any_text(10), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )


# --- links a storage host could send ----------------------------------------------------------

ODD_HOSTS = (
    "a" * 64 + ".example",  # a label longer than DNS allows
    "a..b",  # an empty label
    "xn--a",  # punycode that does not decode
    "xn--ls8h.la",  # punycode for an emoji, which IDNA 2008 refuses
    ".example",
    "example.",
    "a" * 254,
    "[::1]",
    "[::1]:0",
    "[fe80::1%25eth0]",
    "[::ffff:127.0.0.1]",
    "[::1",
    "127.0.0.1:99999",
    "127.0.0.1:-1",
    "user:pass@storage.example",
    "@storage.example",
    "storage.example:",
    "例え.テスト",
    "ex ample.com",
    "exa\tmple.com",
    "exa%41mple.com",
    "0x7f.1",
    "256.256.256.256",
    "storage.example:443:443",
    "\udce9.example",
)
SCHEMES = ("http", "https", "ftp", "file", "data", "javascript", "HTTP", "ws", "")


@st.composite
def odd_links(draw: st.DrawFn) -> str:
    """A link with an odd host, port, userinfo or scheme (or a plain odd text)."""
    host = draw(st.sampled_from(ODD_HOSTS) | st.text(ANY_CHARACTER, max_size=20))
    scheme = draw(st.sampled_from(SCHEMES))
    path = draw(st.sampled_from(["/i.png", "", "/a b.png", "/%zz", "?x=1#f"]))
    return draw(st.sampled_from([f"{scheme}://{host}{path}", f"{scheme}:{host}", host]))
