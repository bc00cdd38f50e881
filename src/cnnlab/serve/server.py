"""`serve`: run the page and API for one model with uvicorn, loopback by default, a token everywhere else."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import socket
from typing import Callable

from cnnlab.errors import ConfigError, invalid
from cnnlab.run import LoadedModel, load_model
from cnnlab.serve.app import create_app

# Connections uvicorn keeps at once before it answers 503 itself: with the 10 MiB body limit, a bound on the
# memory uploads in transit can take (the work queue bounds what waits for the model).
MAX_CONNECTIONS = 64
TOKEN = re.compile(r"[A-Za-z0-9._~-]{8,}")


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(model: str | os.PathLike | LoadedModel, host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
          token: str | None = None, queue: int = 16, print_fn: Callable[[str], None] = print) -> None:
    """Serve `model` (a run directory or ``pretrained:NAME``) at http://HOST:PORT/ until interrupted.

    On a loopback address no token is needed unless one is given; on any
    other, every request must carry `token`, and one is generated (and
    printed in the address to open) when none is given. Port 0 picks a free
    port. ConfigError when the address cannot be bound.
    """
    import uvicorn

    if token is not None and not TOKEN.fullmatch(token):
        raise ConfigError(invalid("token", "cnnlab serve", "at least 8 characters of A-Z a-z 0-9 . _ ~ -",
                                  "<hidden>"))
    if token is None and not is_loopback(host):
        token = secrets.token_urlsafe(24)
    listener = _bind(host, port)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device)
    app = create_app(loaded, token=token, queue=queue)
    bound = listener.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    address = f"http://{shown}:{bound}/" + (f"?token={token}" if token else "")
    print_fn(f"cnnlab serve: {loaded.source} on {loaded.device}; open {address}  (API docs: /docs; Ctrl-C stops)")
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5,
                            server_header=False)
    uvicorn.Server(config).run(sockets=[listener])


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or ConfigError saying why not (in use, not an address of this machine)."""
    if not 0 <= port <= 65535:
        raise ConfigError(invalid("port", "cnnlab serve", "an integer in [0, 65535]", port))
    try:
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host.strip("[]"), port))
        listener.listen(128)
    except OSError as error:
        raise ConfigError(f"Cannot listen on {host}:{port} ({error.strerror or error}); choose another --port or "
                          f"--host.") from None
    return listener
