"""Just enough YAML to write a cassette, with no YAML library at run time.

Mappings and lists in block style, every string double-quoted with YAML's escapes for whatever
is not plainly printable (so any text round-trips, lone surrogates included), integers and
booleans as JSON writes them, and bytes as `!!binary` base64, which is how PyYAML (and so VCR.py)
stores a binary body. The output is read back by `yaml.safe_load` in the test suite.

Kept rather than PyYAML: PyYAML is only a development dependency (the spec's tests read YAML),
and the package's run-time dependencies are httpx, attrs and sniffio; `verify --record` runs
from an installed wheel, and 100 lines that the suite round-trips through PyYAML (any text, any
bytes: tests/verify/test_record.py) cost less than a C-extension dependency for every user.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any, Final

_PLAIN_KEY: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
# Words YAML 1.1 (PyYAML) reads as booleans or null when unquoted.
_RESERVED: Final = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
_ESCAPES: Final = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def dump(document: Mapping[str, Any]) -> str:
    """The YAML text of a mapping of mappings, lists, strings, ints, booleans, None and bytes."""
    return "\n".join(_block(document, 0)) + "\n"


def _block(value: Mapping[str, Any] | list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            lines += _entry(f"{pad}{_key(key)}:", item, indent)
        return lines
    for item in value:
        if isinstance(item, Mapping) and item:
            inner = _block(item, indent + 2)
            lines += [f"{pad}- {inner[0].lstrip()}", *inner[1:]]
        else:
            lines += _entry(f"{pad}-", item, indent)
    return lines


def _entry(head: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, Mapping | list) and item:
        return [head, *_block(item, indent + 2)]
    if isinstance(item, bytes):
        if not item:
            return [f'{head} !!binary ""']
        encoded = base64.encodebytes(item).decode("ascii").splitlines()
        return [f"{head} !!binary |", *(" " * (indent + 2) + line for line in encoded)]
    return [f"{head} {scalar(item)}"]


def _key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _RESERVED:
        return key
    return quoted(key)


def scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list):
        return "[]"
    if isinstance(value, str):
        return quoted(value)
    raise TypeError(f"cannot write {type(value).__name__} to a cassette")


def quoted(text: str) -> str:
    """A double-quoted YAML scalar that reads back as exactly `text`."""
    return '"' + "".join(_escaped(char) for char in text) + '"'


def _escaped(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    if 0x20 <= code <= 0x7E or _printable_beyond_ascii(code):
        return char
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _printable_beyond_ascii(code: int) -> bool:
    """What YAML lets a file hold as it is, less what a reader may take for a line break or a
    byte-order mark (NEL, LS, PS, BOM)."""
    if code in (0x2028, 0x2029, 0xFEFF):
        return False
    return 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or 0x10000 <= code <= 0x10FFFF
