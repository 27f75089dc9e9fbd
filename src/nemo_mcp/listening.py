"""Binding the TCP socket a server listens on, with one sentence for every way it fails.

`serve --http` and the sandbox bind before they start serving, so a port in use (or an
address that is not this computer's) ends with what to do, never a library's raw message.
"""

from __future__ import annotations

import errno
import os
import socket

from nemo_mcp.errors import ConfigError


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: any free port), for a server to listen on.

    Raises `ConfigError` saying what to do when it cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that name it.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except socket.gaierror:
        sock.close()
        raise ConfigError(
            f"{host} is not an address or host name of this computer: choose another with --host"
        ) from None
    except OSError as err:
        sock.close()
        raise ConfigError(problem(host, port, err.errno)) from None
    return sock


def problem(host: str, port: int, code: int | None) -> str:
    """Why `host`:`port` cannot be bound, and what to do, in one sentence."""
    if code == errno.EADDRINUSE:
        other = port + 1 if port < 65535 else 8000
        return (
            f"port {port} on {host} is in use (by another server, perhaps another nemo-mcp): "
            f"stop it, or choose another port with --port, for example --port {other}"
        )
    if code == errno.EACCES:
        return f"port {port} may not be used by this user: choose one above 1023 with --port"
    if code == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this computer: choose another with --host"
    reason = os.strerror(code) if code else "the system refused"
    return f"cannot listen on {host} port {port} ({reason.lower()}): choose another with --port"


def url_of(sock: socket.socket, path: str = "") -> str:
    """The http:// URL a bound socket serves (an IPv6 host in brackets), plus `path`."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{path}"
