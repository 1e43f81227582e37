"""Finding the local (Unix) socket of an indiserver that runs on this machine.

indiserver 1.9.5 and later listen on a Unix socket as well as on TCP (`-u PATH`, default
/tmp/indiserver; an abstract socket on Linux) and pass frames over it as shared memory. The rig
names the server by host:port; the socket that belongs to that same server is found through
/proc: the process listening on the port (`/proc/net/tcp`, then the descriptors of processes
this user may read) and the Unix socket that process listens on (`/proc/net/unix`). Two servers
on one machine have different sockets, and a socket is only taken from the process that owns
the port, so frames never come from another server. When it can't be told (another user's
server, no /proc), the answer says why and the camera uses TCP."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

_LISTEN = "0A"
_UNIX_LISTENING = 0x10000   # __SO_ACCEPTCON in /proc/net/unix's Flags


@dataclass(frozen=True)
class LocalSocket:
    """The server's Unix socket path (None when not found) and, then, why not."""

    path: str | None
    why_not: str = ""


def is_this_machine(host: str) -> bool:
    """True for loopback names and addresses and for addresses of this machine."""
    if host in ("localhost", "localhost.localdomain", socket.gethostname()):
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    for address in addresses:
        try:
            if ipaddress.ip_address(address.split("%")[0]).is_loopback:
                return True
        except ValueError:
            continue
        try:
            with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET,
                               socket.SOCK_DGRAM) as probe:
                probe.bind((address, 0))   # only this machine's own addresses can be bound
            return True
        except OSError:
            continue
    return False


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh)
                for line in fh:
                    fields = line.split()
                    if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return inodes


def _owner(inodes: set[str]) -> tuple[int, set[str]] | None:
    """(pid, socket inodes of that process) of the process holding one of `inodes`."""
    links = {f"socket:[{i}]" for i in inodes}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        held: set[str] = set()
        found = False
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{entry}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                held.add(link[8:-1])
                found = found or link in links
        if found:
            return int(entry), held
    return None


def _unix_listeners(inodes: set[str]) -> list[str]:
    paths = []
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                if len(fields) >= 8 and fields[6] in inodes and \
                        int(fields[3], 16) & _UNIX_LISTENING:
                    paths.append(fields[7])
    except (OSError, StopIteration, ValueError):
        pass
    return paths


def find_local_socket(host: str, port: int) -> LocalSocket:
    """The Unix socket of the indiserver listening on host:port, when it runs here."""
    if not is_this_machine(host):
        return LocalSocket(None, f"{host} is another machine")
    if not os.path.isdir("/proc/net"):
        return LocalSocket(None, "no /proc to find the server's local socket in")
    inodes = _listening_inodes(port)
    if not inodes:
        return LocalSocket(None, f"nothing listens on port {port} here")
    owner = _owner(inodes)
    if owner is None:
        return LocalSocket(None, f"the server on port {port} belongs to another user; "
                                 "name its socket with local_socket in the rig")
    pid, held = owner
    paths = [p for p in _unix_listeners(held) if p.startswith("@")]
    if len(paths) != 1:
        return LocalSocket(None, f"the server on port {port} (pid {pid}) listens on "
                                 f"{len(paths)} local sockets")
    return LocalSocket(paths[0][1:])
