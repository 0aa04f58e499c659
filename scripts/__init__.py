"""Maintainer tools. A package so that the test suite can import `scripts.spec_diff`; the other
scripts run as files (`python scripts/generate.py`)."""
