"""The spec: the contract itself, generation, the low-level client, spec-diff and the release
rules."""
