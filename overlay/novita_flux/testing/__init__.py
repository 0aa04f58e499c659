"""An offline reference server for the FLUX.1 [schnell] API, for your tests and ours.

    from novita_flux.testing import ReferenceServer

    with ReferenceServer() as server:  # uvicorn on 127.0.0.1, key "test-key"
        server.faults.rate_limit_next(2)  # the next two calls get 429, then calls succeed
        ...  # point a client at server.url with server.api_key

`create_app()` is the same server as an ASGI app, to use in-process through
`httpx.ASGITransport`. Both validate requests against the spec exactly as the client does,
answer with the spec's error envelope, and return pre-signed links to real PNG, WebP or JPEG
images of the requested size that need no API key. The account behind the key
(`ReferenceServer(balance=...)`, `.account`) pays for every task and reports its balance.
`Faults` (`app.state.faults`, `ReferenceServer.faults`) injects errors, malformed bodies,
latency and the per-minute image limit, and counts what a client did.

Importing this package imports starlette, uvicorn and Pillow (the `testing` extra);
`import novita_flux` never does.
"""

from importlib.util import find_spec

_missing = [name for name in ("PIL", "starlette", "uvicorn") if find_spec(name) is None]
if _missing:
    raise ImportError(
        "novita_flux.testing needs the testing extra (pip install 'novita-flux[testing]'); "
        f"missing: {', '.join(_missing)}"
    )

# After the check, so a missing extra is named instead of surfacing as a bare ImportError.
from novita_flux.testing._account import Account  # noqa: E402
from novita_flux.testing._app import create_app  # noqa: E402
from novita_flux.testing._faults import Faults, MalformedKind  # noqa: E402
from novita_flux.testing._profiles import PROFILE_NAMES, ProfileName  # noqa: E402
from novita_flux.testing._server import ReferenceServer, serve  # noqa: E402

__all__ = [
    "PROFILE_NAMES",
    "Account",
    "Faults",
    "MalformedKind",
    "ProfileName",
    "ReferenceServer",
    "create_app",
    "serve",
]
