"""Checks the listening address before any worker starts, and resolves port 0 to a real port."""

from __future__ import annotations

import errno
import socket

__all__ = ["ListenError", "prepare_listener"]


class ListenError(Exception):
    """The address cannot be served; the message says what to change."""


def prepare_listener(host: str, port: int) -> tuple[int, socket.socket | None]:
    """Return the port the workers must bind, and a socket that holds it when the OS chose it.

    A fixed port is checked by connecting to it: a server already listening there (of any user, with or
    without SO_REUSEPORT) would otherwise silently share the port with our workers. Port 0 is bound here
    with SO_REUSEPORT and kept, so the port stays ours while workers come and go.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(f"cannot resolve host {host!r}: {exc.strerror}; pass an IP address such as "
                          "127.0.0.1") from None
    family, _, _, _, address = infos[0]
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((address[0], 0, *address[2:]))
    except OSError as exc:
        holder.close()
        raise ListenError(f"cannot bind {host}: {exc.strerror}; use an address of this machine, such as "
                          "127.0.0.1 or 0.0.0.0") from None
    if port == 0:
        return holder.getsockname()[1], holder
    holder.close()
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        target = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else address[0]
        code = probe.connect_ex((target, port, *address[2:]))
    if code == 0:
        raise ListenError(f"cannot listen on {host}:{port}: another server is already listening there; stop "
                          "it or choose another port with --port")
    if code not in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH):
        raise ListenError(f"cannot listen on {host}:{port}: {errno.errorcode.get(code, code)}")
    return port, None
