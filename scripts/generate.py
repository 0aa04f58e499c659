"""Regenerate generated/novita_flux_api from openapi/, or check that it is up to date.

    python scripts/generate.py          # rewrite generated/novita_flux_api
    python scripts/generate.py --check  # regenerate into a temporary folder; show the diff, exit 1

The output is reproducible byte for byte: the generator and ruff (its post-hooks) are pinned in
pyproject.toml, the hooks run with --isolated, and this script refuses a different generator.
Besides the generator's own output the package gets `py.typed` and `openapi.json`, the spec as
JSON, which the overlay and the reference server read their constraints from at run time.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "flux-1-schnell.yaml"
CONFIG = ROOT / "openapi" / "generator-config.yaml"
PACKAGE = "novita_flux_api"
TARGET = ROOT / "generated" / PACKAGE
GENERATOR = "openapi-python-client"
PINNED_TOOLS = (GENERATOR, "ruff")


def pinned_versions() -> dict[str, str]:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = dict(requirement.split("==", 1) for requirement in dev["dev"] if "==" in requirement)
    return {tool: pins[tool] for tool in PINNED_TOOLS}


def check_tool_versions() -> None:
    """The committed bytes depend on the generator and on ruff, its formatter: refuse others."""
    for tool, pinned in pinned_versions().items():
        installed = importlib.metadata.version(tool)
        if installed != pinned:
            raise SystemExit(
                f"{tool} {installed} is installed but pyproject.toml pins {pinned}; "
                "run `make install` so that the output matches what is committed"
            )


def generate_into(destination: Path, spec: Path = SPEC) -> None:
    """Write the whole package generated from spec to destination (which must not exist)."""
    check_tool_versions()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [
        str(bin_dir / GENERATOR),
        "generate",
        "--path",
        str(spec),
        "--config",
        str(CONFIG),
        "--meta",
        "none",
        "--output-path",
        str(destination),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    # The generator reports skipped schemas and failed hooks as warnings and still exits 0;
    # a client with silently missing pieces is worse than no client.
    if result.returncode != 0 or "Warning" in output or "Error" in output:
        raise SystemExit(f"{GENERATOR} failed:\n{output}")
    (destination / "py.typed").write_text("")
    document = yaml.safe_load(spec.read_text(encoding="utf-8"))
    text = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    (destination / "openapi.json").write_text(text, encoding="utf-8")


def tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def diff(expected: dict[str, bytes], actual: dict[str, bytes]) -> list[str]:
    lines: list[str] = []
    for name in sorted(expected.keys() | actual.keys()):
        old, new = actual.get(name), expected.get(name)
        if old == new:
            continue
        lines.extend(
            difflib.unified_diff(
                (old or b"").decode(errors="replace").splitlines(keepends=True),
                (new or b"").decode(errors="replace").splitlines(keepends=True),
                fromfile=f"generated/{PACKAGE}/{name}" if old is not None else "/dev/null",
                tofile=f"spec would generate {name}" if new is not None else "/dev/null",
            )
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if generated/ is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="novita-flux-gen-") as scratch:
        fresh = Path(scratch) / PACKAGE
        generate_into(fresh)
        if args.check:
            changes = diff(tree(fresh), tree(TARGET) if TARGET.exists() else {})
            if changes:
                sys.stdout.writelines(changes)
                print(
                    f"\ngenerated/{PACKAGE} does not match openapi/: run `make generate` "
                    "(and never edit generated/ by hand)",
                    file=sys.stderr,
                )
                return 1
            print(f"generated/{PACKAGE} matches openapi/")
            return 0
        if TARGET.exists():
            shutil.rmtree(TARGET)
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(fresh, TARGET)
        print(f"wrote generated/{PACKAGE}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
