"""How values are written for people: amounts of money, and text that must fit a line or a card.

Money is always exact: the API's prices are Decimals with up to 13 places, and a figure rounded
to a cent (or to a fixed number of places) would show $0.00 for a call that was billed. So an
amount is written as the shortest exact decimal with at least two places, never in exponent
notation: `0.003`, `0.0000029296875`, `1.50`, `0.00`. The same figure the same way everywhere.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

# Explicit bidi controls (embeddings, overrides, isolates, marks): one of them in a prompt
# could reorder whatever is displayed after it.
BIDI_CONTROLS: Final = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A lone surrogate: how Python holds an undecodable byte of a file name ('\udcff'), or a "\ud800"
# read from JSON; no encoder writes one.
LONE_SURROGATES: Final = re.compile("[\ud800-\udfff]")
ELLIPSIS: Final = "..."  # as show() and every message cut so far


def usd(amount: Decimal | int) -> str:
    """An amount in USD as it is shown: exact, shortest, at least two places (no '$')."""
    amount = Decimal(amount)
    if not amount.is_finite():
        return str(amount)
    if amount.is_zero():  # -0 and 0E-12 alike
        return "0.00"
    # Not normalize(): it rounds to the context's 28 digits.
    whole, _, places = format(amount, "f").partition(".")  # 1E+1 -> 10, never an exponent
    return f"{whole}.{places.rstrip('0').ljust(2, '0')}"  # 0.0037500 -> 0.00375


def shortened(text: str, limit: int = 80, *, counted: bool = False) -> str:
    """`text` cut to at most `limit` characters, ending in "..." when it was cut; `counted`: its
    first `limit` characters kept whole, and "... [N more]" says how many were cut (an error's
    body, which a reader may need to know was longer)."""
    if len(text) <= limit:
        return text
    if counted:
        return f"{text[:limit]}{ELLIPSIS} [{len(text) - limit} more]"
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def encodable(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD, so that it can be written as UTF-8."""
    return LONE_SURROGATES.sub("\ufffd", text)


def without_bidi_controls(text: str) -> str:
    """`text` with explicit bidi controls replaced by U+FFFD, so that it cannot reorder what is
    shown after it (and the replacement shows that something was there)."""
    return BIDI_CONTROLS.sub("\ufffd", text)
