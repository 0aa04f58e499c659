"""How much of the generated package a set of tests runs, module by module.

    python scripts/generated_usage.py tests/client/test_client.py      # what the overlay runs
    python scripts/generated_usage.py tests/spec/test_low_level_client.py  # the low-level use

The measure behind README's "How it is built": a generated line that neither the overlay nor a
documented, tested use runs is code the wheel ships for nobody. Standard library only (a line
tracer over the generated files), so it needs nothing the suite does not have.
"""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path

import pytest

import novita_flux_api

ROOT = Path(novita_flux_api.__file__).resolve().parent


def executable(path: Path) -> set[int]:
    """The lines of a module that hold code, as the interpreter numbers them."""
    found: set[int] = set()
    pending = [compile(path.read_text(), str(path), "exec")]
    while pending:
        code = pending.pop()
        found |= {line for _, _, line in code.co_lines() if line is not None}
        pending += [const for const in code.co_consts if isinstance(const, types.CodeType)]
    return found


def main(arguments: list[str]) -> int:
    ran: dict[str, set[int]] = {}
    prefix = str(ROOT)

    def tracer(frame: types.FrameType, event: str, _: object) -> object:
        name = frame.f_code.co_filename
        if not name.startswith(prefix):
            return None
        if event == "line":
            ran.setdefault(name, set()).add(frame.f_lineno)
        return tracer

    sys.settrace(tracer)  # type: ignore[arg-type]
    threading.settrace(tracer)  # type: ignore[arg-type]
    # The generated modules were imported before the tracer: their module-level lines count as
    # run, as any import runs them.
    status = pytest.main(["-q", "-p", "no:xdist", "-p", "no:randomly", *arguments])
    sys.settrace(None)
    total = hit = 0
    for path in sorted(ROOT.rglob("*.py")):
        lines = executable(path)
        module_level = {
            line
            for line in lines
            if line in _module_lines(path)  # definitions and imports
        }
        done = (ran.get(str(path), set()) | module_level) & lines
        total += len(lines)
        hit += len(done)
        print(f"{len(done):4d}/{len(lines):4d}  {path.relative_to(ROOT.parent)}")
    print(f"{hit}/{total} executable lines of the generated package ran ({hit / total:.0%})")
    return int(status)


def _module_lines(path: Path) -> set[int]:
    code = compile(path.read_text(), str(path), "exec")
    return {line for _, _, line in code.co_lines() if line is not None}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
