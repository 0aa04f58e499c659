"""ReferenceServer: the reference app served by uvicorn on loopback, in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, TypedDict, Unpack

import uvicorn
from starlette.applications import Starlette

from novita_flux.testing._account import Account, Amount
from novita_flux.testing._app import create_app
from novita_flux.testing._faults import Faults
from novita_flux.testing._profiles import ProfileName

HOST: Final = "127.0.0.1"
START_TIMEOUT: Final = 10.0  # seconds; startup normally takes a few milliseconds
STOP_TIMEOUT: Final = 10.0


class AppOptions(TypedDict, total=False):
    """The options of create_app besides api_key."""

    image_url_ttl: int
    images_per_minute: int | None
    latency: float
    image_base_url: str | None
    clock: Callable[[], float]
    profile: ProfileName
    balance: Amount | None


class ReferenceServer:
    """The reference server over real HTTP on 127.0.0.1, on a free port.

    Images are served on a second port, a different origin from the API (`image_base_url`), so
    a client that sends its API key to every host is caught: see
    `faults.image_requests_with_authorization`. Use it as a context manager, or call start()
    and stop().
    """

    def __init__(self, *, api_key: str = "test-key", **options: Unpack[AppOptions]) -> None:
        self.api_key = api_key
        self.app = create_app(api_key=api_key, **options)
        self._own_image_host = options.get("image_base_url") is None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._ports: tuple[int, int] | None = None

    @property
    def faults(self) -> Faults:
        faults: Faults = self.app.state.faults
        return faults

    @property
    def account(self) -> Account:
        """The account behind the key: its balance, what it spent, what it reports."""
        account: Account = self.app.state.account
        return account

    @property
    def url(self) -> str:
        """The API's base URL, e.g. http://127.0.0.1:54321."""
        return f"http://{HOST}:{self._started_ports()[0]}"

    @property
    def image_base_url(self) -> str:
        """The origin image links point at."""
        self._started_ports()
        base: str = self.app.state.image_base_url
        return base

    def start(self) -> ReferenceServer:
        if self._thread is not None:
            raise RuntimeError("the reference server is already running")
        sockets = [_bound_socket() for _ in range(2)]
        ports = (sockets[0].getsockname()[1], sockets[1].getsockname()[1])
        if self._own_image_host:
            self.app.state.image_base_url = f"http://{HOST}:{ports[1]}"
        config = uvicorn.Config(
            self.app, log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": sockets}, name="novita-flux-reference-server"
        )
        thread.daemon = True  # a test that forgets stop() must not hang the interpreter's exit
        self._server, self._thread, self._ports = server, thread, ports
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                for sock in sockets:
                    sock.close()
                raise RuntimeError("the reference server did not start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Shut the server down and wait for it; does nothing if it is not running."""
        server, thread = self._server, self._thread
        self._server = self._thread = self._ports = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(STOP_TIMEOUT)

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"url={self.url!r}" if self._ports else "not running"
        return f"<ReferenceServer {where}>"

    def _started_ports(self) -> tuple[int, int]:
        if self._ports is None:
            raise RuntimeError("the reference server is not running; call start() first")
        return self._ports


def serve(
    app: Starlette,
    *,
    host: str,
    port: int,
    log_level: str = "info",
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Serve `app` in the foreground until interrupted (`novita-flux serve-mock`). The socket is
    bound first, so a port in use raises OSError before anything starts; `on_ready` gets the
    URL served (with the port the OS chose, for port 0)."""
    sock = _bound_socket(host, port, reuse=True)
    bound = sock.getsockname()[1]
    if on_ready is not None:
        on_ready(f"http://{host if ':' not in host else f'[{host}]'}:{bound}")
    config = uvicorn.Config(app, log_level=log_level, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _bound_socket(host: str = HOST, port: int = 0, *, reuse: bool = False) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets that say they are TCP, and
    # without it every keep-alive response stalls on Nagle and delayed ACKs (uvicorn's own
    # binding has the same problem, hence `serve` above).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    if reuse:  # a restarted foreground server may rebind a port in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))  # port 0: the OS picks a free one
    return sock
