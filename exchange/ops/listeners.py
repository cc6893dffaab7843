"""The listening sockets of `exchange serve --workers N`: one per server process, all on one port (SO_REUSEPORT),
so that the kernel spreads new connections over the processes.

With the one socket uvicorn shares between its workers, the process that wakes first accepts every connection
waiting (asyncio accepts up to its backlog at each wake-up). Partner systems hold keep-alive connections and open
them together (after a restart, or a burst): in `bench/load.py --workers 2` one process had 18.5 s of CPU and the
other 0.2 s, so a second process added nothing. With a socket each, the kernel hands each new connection to one of
them by a hash of its addresses.

The parent binds the port first without SO_REUSEPORT, so an address in use (another exchange, another program) is
refused as with one process; then it holds the port with a bound socket of the group that never listens (it gets
no connections) while each worker listens on its own. A worker's socket is made in the worker: uvicorn hands its
supervisor's list of sockets to every process it starts (and restarts), and `WorkerListener` is pickled into it as
the recipe, not the socket.
"""
from __future__ import annotations

import socket

__all__ = ["PortClaim", "WorkerListener"]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bound(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (a port in TIME_WAIT after a restart)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listening_socket(host: str, port: int) -> socket.socket:
    """A worker's own socket of the port's group (uvicorn's server calls `listen` on it)."""
    return _bound(host, port, reuse_port=True)


class WorkerListener:
    """Stands for a worker's socket in uvicorn's list: unpickled in a worker process, it is that worker's own
    listening socket (`listening_socket`)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __reduce__(self):  # noqa: ANN204
        return listening_socket, (self.host, self.port)


class PortClaim:
    """Holds `host:port` for a group of worker sockets from `open` to `close`."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._holder: socket.socket | None = None

    def open(self) -> list:
        """The list uvicorn's supervisor hands to its workers. Raises OSError (address in use, say) as a single
        process would."""
        if self.port:
            _bound(self.host, self.port, reuse_port=False).close()  # in use by anything: refused here
        self._holder = _bound(self.host, self.port, reuse_port=True)  # bound, never listening: gets no connection
        self.port = self._holder.getsockname()[1]  # (port 0: the one the system chose, for every worker)
        return [WorkerListener(self.host, self.port)]

    def close(self) -> None:
        if self._holder is not None:
            self._holder.close()
            self._holder = None
