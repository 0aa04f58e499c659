"""The `novita-flux` command line.

Exit status: 0 success; 1 the API (or the storage host) failed, or a batch ran with some lines
refused; 2 the input was refused before anything was sent (invalid value, over budget, no API key,
unreadable file); 130 interrupted.
"""

from novita_flux._cli._main import main

__all__ = ["main"]
