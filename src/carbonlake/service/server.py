"""Running the service: bind the address, say where it is, serve until stopped."""

from __future__ import annotations

import contextlib
import copy
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from .._exceptions import ConfigurationError, ServiceError
from ..settings import Settings
from ._security import is_loopback
from .app import create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "or --host ([server] port, host)"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def log_config() -> dict[str, Any]:
    """uvicorn's logging, every line on stderr (stdout is for the one JSON document)."""
    config: dict[str, Any] = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


def address(sock: socket.socket) -> tuple[str, int, str]:
    """``(host, port, url)`` a socket listens on."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return host, port, f"http://{shown}:{port}/"


class _Server(uvicorn.Server):
    """uvicorn, except that SIGINT and SIGTERM end it with a clean exit: uvicorn raises the
    signal again once stopped, which the command line would report as a failure."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def uvicorn_server(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for ``app`` that logs to stderr; a first SIGINT or SIGTERM stops it
    gracefully (running executions end ABORTED, resumable), a second at once."""
    config = uvicorn.Config(
        app, log_config=log_config(), lifespan="on", timeout_graceful_shutdown=30
    )
    return _Server(config)


def serve(settings: Settings, announce: Callable[[dict[str, Any]], None]) -> None:
    """Serve the API and the page over the workspace of ``settings`` until stopped
    (SIGINT, SIGTERM); ``announce`` gets the address once it is bound."""
    sock = bind(settings.server.host, settings.server.port)
    try:
        app = create_app(settings)
        host, port, url = address(sock)
        service = app.state.service
        announce(
            {
                "url": url,
                "host": host,
                "port": port,
                "workspace": str(settings.workspace),
                "loopback": is_loopback(host),
                "generated_api_key": service.generated_key,
            }
        )
        uvicorn_server(app).run(sockets=[sock])
    finally:
        sock.close()


class ServerThread:
    """The service on a loopback port in a background thread (tests, screenshots, embedding).

    ``with ServerThread(app) as url:`` serves ``app`` until the block ends.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.sock = bind(host, port)
        self.url = address(self.sock)[2]
        self.server = uvicorn_server(app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ServiceError(f"the service did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
