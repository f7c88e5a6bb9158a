"""HTTP beside the workers: `edigw run` serves the API, the webhooks and the portal on http.listen.

uvicorn runs in a thread of the runner process, on a socket bound here first, so that a
port already taken is an error before any worker starts, and port 0 gets a free port
that the log names. GET /healthz answers once the server is up; stopping lets requests
in flight finish (a few seconds at most) before the runner stops its workers.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from gateway import settings as settings_mod
from gateway.api.api_settings import ApiSettings
from gateway.api.app import create_app

log = logging.getLogger(__name__)
STARTUP_TIMEOUT = 60.0
GRACE = 5  # seconds requests in flight get when the runner stops


class HttpServer:
    """One uvicorn server in a thread, on a socket bound before it starts."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host = host
        self.app = app
        self.sock = bind(host, port)
        self.port = int(self.sock.getsockname()[1])
        # log_config=None: uvicorn's records go through the gateway's (redacting) handlers.
        config = uvicorn.Config(self.app, log_config=None, server_header=False,
                                timeout_graceful_shutdown=GRACE, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="edigw-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Start serving; returns once the server answers (OSError if it could not start)."""
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise OSError(f"the HTTP server on {self.url} did not start (see the log)")
            time.sleep(0.01)
        log.info("HTTP on %s (API, webhooks; health at /healthz)", self.url)
        hooks = getattr(self.app.state, "webhooks", None)
        for problem in hooks.problems() if hooks is not None else ():
            log.error("%s", problem)

    def stop(self) -> None:
        """Stop taking requests, let those in flight finish, close the socket."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=GRACE + 5)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout=5)
        self.sock.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; OSError naming the address if it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


@contextlib.contextmanager
def serving(gw: settings_mod.Settings, store_url: str,
            listen: str | None = None) -> Iterator[HttpServer | None]:
    """Serve HTTP for the block's length on listen (else http.listen); nothing when
    http.enabled is false and no listen address is given."""
    if listen is None and not gw.http_enabled:
        yield None
        return
    host, port = settings_mod.parse_listen(listen or gw.http_listen)
    server = HttpServer(create_app(ApiSettings.from_settings(gw, store_url=store_url)), host,
                        port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
