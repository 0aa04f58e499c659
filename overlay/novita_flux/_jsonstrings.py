"""What JSON Schema means by a string's `pattern` and by `format: uri`, in Python's terms.

A `pattern` is an ECMA-262 regular expression (JSON Schema says so; OpenAPI 3.0 repeats it), and
Python's `re` reads the same text differently in ways that matter to a validator: `$` also
matches before a trailing newline (so `^png$` accepts "png\\n"), `\\d` and `\\w` take any
Unicode digit or letter ("١٢" for `^\\d+$`), `\\s` takes a set of spaces of its own, `.` stops
only at "\\n", and `{,3}` or `a*+` are quantifiers to Python and not to ECMA. So a pattern is
translated, once, when its schema is compiled, into a Python expression with ECMA's meaning:

- `$` -> `\\Z` (the very end), `.` -> any character but ECMA's four line terminators;
- `\\d`, `\\w`, `\\b` ASCII only (ECMA's, and Python's under re.ASCII);
- `\\s` is ECMA's white space exactly: ASCII's six, NO-BREAK SPACE, ZERO WIDTH NO-BREAK SPACE
  (U+FEFF), the Unicode space separators (Zs) and the line and paragraph separators. Not Python's
  (which adds U+001C..U+001F and U+0085) and not ASCII's alone: the spec's patterns are read as
  every other JSON Schema validator reads them.

Whatever this module cannot translate faithfully (backreferences, `\\p{..}`, `\\u{..}`, Python's
own syntax such as `(?i)` or `\\Z`, a lone `{`) makes compiling the schema fail, as an unknown
keyword does: the spec can never be silently read with another meaning.

`format: uri` is RFC 3986's `URI`: a scheme, then anything its grammar allows (an authority is
optional: `mailto:x` is a URI), nothing it does not (a space, a bare `%`, a `|`, a character
outside ASCII, which would make it an IRI).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

# ECMA-262's WhiteSpace and LineTerminator (what `\s` matches). Zs as of Unicode 15; the test
# suite holds this list to the Python's unicodedata.
ECMA_SPACES: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_LINE_TERMINATORS: Final = "\n\r\u2028\u2029"

# A JSON string is Unicode text: a lone surrogate (which Python lets a str hold, from a JSON
# `\ud800` escape or an undecodable byte of a command line) is no character, cannot be written
# as UTF-8, and I-JSON (RFC 7493, section 2.1) forbids it.
LONE_SURROGATE: Final = re.compile("[\ud800-\udfff]")

_SPACES_SET: Final = "".join(f"\\u{ord(char):04x}" for char in ECMA_SPACES)
_IN_CLASS: Final = {"d": "0-9", "w": "A-Za-z0-9_", "s": _SPACES_SET}
_CLASS_ESCAPES: Final = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[A-Za-z0-9_]",
    "W": "[^A-Za-z0-9_]",
    "s": f"[{_SPACES_SET}]",
    "S": f"[^{_SPACES_SET}]",
}
_CONTROL_ESCAPES: Final = {"t": "\t", "n": "\n", "v": "\v", "f": "\f", "r": "\r"}
_SYNTAX: Final = frozenset("^$\\.*+?()[]{}|/-")
_QUANTIFIER: Final = re.compile(r"\{[0-9]+(,[0-9]*)?\}")
_GROUP_OPENERS: Final = ("(?:", "(?=", "(?!", "(?<=", "(?<!")


class UntranslatablePattern(NotImplementedError):
    """A pattern whose ECMA-262 meaning this module cannot give Python: compiling refuses it."""

    def __init__(self, pattern: str, at: int, what: str) -> None:
        super().__init__(
            f"the spec's pattern {pattern!r} uses {what} (at {at}), which novita_flux cannot "
            "read as ECMA-262 yet"
        )


def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """The spec's ECMA-262 `pattern`, compiled to match what it matches in JSON Schema (use
    `.search`: a JSON Schema pattern is not anchored)."""
    translated = _Translator(pattern).translate()
    try:
        return re.compile(translated, re.ASCII)
    except re.error as error:  # e.g. a lookbehind of varying width, which ECMA-262 allows
        raise UntranslatablePattern(
            pattern, error.pos or 0, f"what Python cannot match ({error.msg})"
        ) from None


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0
        self.out: list[str] = []
        self.quantifiable = False  # whether the last thing emitted can take a quantifier

    def refuse(self, what: str) -> UntranslatablePattern:
        return UntranslatablePattern(self.pattern, self.at, what)

    def translate(self) -> str:
        pattern = self.pattern
        while self.at < len(pattern):
            char = pattern[self.at]
            if char == "\\":
                self.emit(self.escape(), 2)
            elif char == "[":
                self.emit(*self.char_class())
            elif char == "(":
                self.group()
            elif char in "*+?{":
                self.quantifier()
            elif char in ")|^$":
                self.out.append("\\Z" if char == "$" else char)
                self.quantifiable = char == ")"
                self.at += 1
            elif char == ".":
                self.emit(f"[^{_LINE_TERMINATORS}]", 1)
            elif char in "]}":
                raise self.refuse(f"a lone {char!r}")
            else:
                self.emit(re.escape(char), 1)
        return "".join(self.out)

    def emit(self, text: str, length: int) -> None:
        self.out.append(text)
        self.at += length
        self.quantifiable = True

    def escape(self) -> str:
        """The Python for the escape at `at` (outside a class); its length is 2 except for
        \\c, \\x and \\u, which advance `at` past their extra characters themselves."""
        pattern = self.pattern
        if self.at + 1 >= len(pattern):
            raise self.refuse("a trailing backslash")
        char = pattern[self.at + 1]
        if char in _CLASS_ESCAPES:
            return _CLASS_ESCAPES[char]
        if char in "bB":
            return "\\" + char  # a word boundary; ASCII's words under re.ASCII, as ECMA's
        return re.escape(self.character_escape(char))

    def character_escape(self, char: str) -> str:
        """The one character an escape stands for (`at` is on its backslash; extra characters
        of \\c, \\x and \\u are consumed here, the backslash and `char` by the caller)."""
        pattern, at = self.pattern, self.at
        if char in _CONTROL_ESCAPES:
            return _CONTROL_ESCAPES[char]
        if char == "0" and not pattern[at + 2 : at + 3].isdigit():
            return "\0"
        if char in _SYNTAX:
            return char
        for letter, digits in (("x", 2), ("u", 4)):
            hexdigits = pattern[at + 2 : at + 2 + digits]
            if char == letter and re.fullmatch(f"[0-9A-Fa-f]{{{digits}}}", hexdigits):
                self.at += digits
                return chr(int(hexdigits, 16))
        if char == "c" and re.fullmatch("[A-Za-z]", pattern[at + 2 : at + 3]):
            self.at += 1
            return chr(ord(pattern[at + 2]) % 32)
        raise self.refuse(f"the escape \\{char}")

    def char_class(self) -> tuple[str, int]:
        """The Python for the class starting at `at`, and its length."""
        pattern, start = self.pattern, self.at
        at = start + 1
        negated = pattern.startswith("^", at)
        at += negated
        if pattern.startswith("]", at):  # ECMA: [] matches nothing, [^] anything
            return ("(?s:.)" if negated else "(?!)"), at + 1 - start
        parts = ["[^" if negated else "["]
        first = at  # where the class's members start
        while at < len(pattern) and pattern[at] != "]":
            char = pattern[at]
            if char == "-" and pattern.startswith("-", at + 1):
                self.at = at
                raise self.refuse("'--' in a class")
            if char != "\\":
                # Escaped: Python reads "[" and doubled "&", "~", "|", "-" in a class as set
                # syntax, now or in a version to come; ECMA reads them as themselves.
                parts.append(re.escape(char) if char in "[&~|" else char)
                at += 1
                continue
            escaped = pattern[at + 1 : at + 2]
            if escaped in _IN_CLASS:
                after = pattern.startswith("-", at + 2) and pattern[at + 3 : at + 4] not in "]"
                if after or (pattern[at - 1] == "-" and at - 1 > first):
                    self.at = at
                    raise self.refuse("a class escape at the end of a range")
                parts.append(_IN_CLASS[escaped])
            elif escaped in ("D", "W", "S"):
                self.at = at
                raise self.refuse(f"\\{escaped} inside a class")
            elif escaped == "b":
                parts.append("\\x08")  # backspace, in a class
            elif escaped == "-":
                parts.append("\\-")
            else:
                self.at = at
                before = self.at
                parts.append(re.escape(self.character_escape(escaped)))
                at += self.at - before
            at += 2
        if at >= len(pattern):
            self.at = start
            raise self.refuse("a class that is never closed")
        return "".join(parts) + "]", at + 1 - start

    def group(self) -> None:
        pattern, at = self.pattern, self.at
        if pattern.startswith("(?<", at) and not pattern.startswith(_GROUP_OPENERS, at):
            name = re.match(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", pattern[at:])
            if name is None:
                raise self.refuse("a group it does not know")
            self.out.append(f"(?P<{name.group(1)}>")
            self.at += name.end()
        elif pattern.startswith("(?", at) and not pattern.startswith(_GROUP_OPENERS, at):
            raise self.refuse("a group it does not know")
        else:
            opener = next((o for o in _GROUP_OPENERS if pattern.startswith(o, at)), "(")
            self.out.append(opener)
            self.at += len(opener)
        self.quantifiable = False

    def quantifier(self) -> None:
        pattern, at = self.pattern, self.at
        bounded = _QUANTIFIER.match(pattern, at) if pattern[at] == "{" else None
        if pattern[at] == "{" and bounded is None:
            raise self.refuse("a '{' that is not a quantifier")
        if not self.quantifiable:
            raise self.refuse("a quantifier with nothing to repeat")
        end = bounded.end() if bounded is not None else at + 1
        end += pattern.startswith("?", end)  # lazy
        if end < len(pattern) and (pattern[end] in "*+?" or _QUANTIFIER.match(pattern, end)):
            self.at = end
            raise self.refuse("a quantifier of a quantifier")
        self.out.append(pattern[at:end])
        self.at = end
        self.quantifiable = False


# --- format: uri ------------------------------------------------------------------------------

# Each part of RFC 3986's grammar is a run of allowed characters with percent-encodings between
# runs (`[c]*(?:%HH[c]*)*`, never `(?:[c]|%HH)*`), and userinfo is tried only when an "@" comes
# before the path: a pre-signed link of 350 characters is matched in 1.5 us, not thirty.
_UNRESERVED_SUB: Final = r"A-Za-z0-9\-._~!$&'()*+,;="
_PCT: Final = "%[0-9A-Fa-f]{2}"


def _run(chars: str) -> str:
    return f"[{chars}]*(?:{_PCT}[{chars}]*)*"


_URI: Final = re.compile(
    rf"""
    [A-Za-z][A-Za-z0-9+\-.]*:                                 # scheme
    (?:
        //(?:(?=[^/?\#@]*@){_run(_UNRESERVED_SUB + ":")}@)?  # userinfo, if an @ comes
        (?:\[(?P<literal>[^\]]*)\]|{_run(_UNRESERVED_SUB)})   # IP-literal, reg-name or IPv4
        (?::[0-9]*)?                                          # port
        (?:/{_run(_UNRESERVED_SUB + ":@/")})?                 # path-abempty
      | /(?!/){_run(_UNRESERVED_SUB + ":@/")}                 # path-absolute
      | (?:[{_UNRESERVED_SUB}:@]|{_PCT}){_run(_UNRESERVED_SUB + ":@/")}  # path-rootless
    )?                                                        # or path-empty
    (?:\?{_run(_UNRESERVED_SUB + ":@/?")})?                   # query
    (?:\#{_run(_UNRESERVED_SUB + ":@/?")})?                   # fragment
    """,
    re.VERBOSE,
)
_IP_FUTURE: Final = re.compile(r"[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+")


def is_uri(text: str) -> bool:
    """Whether `text` is a URI by RFC 3986 (`URI`: absolute, a fragment allowed)."""
    match = _URI.fullmatch(text)
    if match is None:
        return False
    literal = match.group("literal")
    return literal is None or _is_ip_literal(literal)


def _is_ip_literal(text: str) -> bool:
    if _IP_FUTURE.fullmatch(text):
        return True
    if "%" in text:  # a zone id is RFC 6874's, not RFC 3986's
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
