"""Network interfaces, their addresses and counters, and listening sockets.

Readers block briefly (they read /proc and netlink through psutil); ``network_usage``
adds the sampled rates of a ``Snapshot`` to the interfaces' current state for
``sys.network``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

import psutil

from xsys.protocol import PermissionDenied

if TYPE_CHECKING:
    from xsys.host.sampler import Snapshot

#: Socket families ``listening_ports`` takes (psutil ``net_connections`` kinds).
ConnectionKind = Literal["inet", "inet4", "inet6", "tcp", "udp", "unix", "all"]


@dataclasses.dataclass(frozen=True)
class InterfaceStats:
    """The state of one interface (psutil ``net_if_stats``): ``isup``, ``speed_mbps``
    (link speed in megabits per second, 0 when unknown), ``mtu_bytes``, ``duplex``
    (``full``, ``half`` or ``unknown``)."""

    isup: bool
    speed_mbps: int
    mtu_bytes: int
    duplex: str


class InterfaceAddress(TypedDict):
    """An IP address of an interface (psutil ``net_if_addrs``): ``family`` (``ipv4`` or
    ``ipv6``), ``address``, ``netmask`` and ``broadcast`` (None where there is none)."""

    family: Literal["ipv4", "ipv6"]
    address: str
    netmask: str | None
    broadcast: str | None


@dataclasses.dataclass(frozen=True)
class InterfaceAddresses:
    """The addresses of one interface: ``mac`` (link-layer address or None) and ``ips``
    (IPv4 and IPv6, in the order the OS lists them)."""

    mac: str | None
    ips: tuple[InterfaceAddress, ...]


class NetIO(TypedDict, total=False):
    """Counters of one interface, or of all, since boot (psutil ``net_io_counters``):
    ``bytes_sent``, ``bytes_recv``, ``packets_sent``, ``packets_recv``, ``errin``,
    ``errout``, ``dropin``, ``dropout`` (counts). In a ``Snapshot``, also each as a
    per-second rate over the sampling interval (``bytes_sent_per_s``...)."""

    bytes_sent: int
    bytes_recv: int
    packets_sent: int
    packets_recv: int
    errin: int
    errout: int
    dropin: int
    dropout: int
    bytes_sent_per_s: float
    bytes_recv_per_s: float
    packets_sent_per_s: float
    packets_recv_per_s: float
    errin_per_s: float
    errout_per_s: float
    dropin_per_s: float
    dropout_per_s: float


class _Interface(TypedDict):
    name: str
    isup: bool
    speed_mbps: int
    mtu_bytes: int
    duplex: str
    mac: str | None
    addresses: list[InterfaceAddress]


class Interface(_Interface, NetIO, total=False):
    """One ``sys.network`` interface: its name, ``InterfaceStats`` fields (``isup``,
    ``speed_mbps``, ``mtu_bytes``, ``duplex``; false/0/empty for an interface without
    stats), ``mac``, ``addresses`` (``InterfaceAddress`` each), and its ``NetIO``
    counters and rates where the sample has them."""


class NetworkUsage(TypedDict):
    """``sys.network``: ``interfaces`` (``Interface`` each, by name), ``total`` (``NetIO``
    summed over every interface), ``interval_s`` (seconds the rates span) and ``ts``
    (epoch seconds of the sample)."""

    interfaces: list[Interface]
    total: NetIO
    interval_s: float
    ts: float


class InterfaceSummary(TypedDict):
    """An interface in ``sys.info``: ``name``, ``isup``, ``addresses`` (IP strings) and
    ``bytes_sent_per_s``/``bytes_recv_per_s`` (0.0 without a sample)."""

    name: str
    isup: bool
    addresses: list[str]
    bytes_sent_per_s: float
    bytes_recv_per_s: float


class Port(TypedDict):
    """A listening socket: ``proto`` (``tcp``/``udp``; unix sockets count by their type),
    ``family`` (``ipv4``, ``ipv6``, ``unix``), ``address``, ``port`` (None for unix
    sockets), ``pid`` and ``process`` (its name) where visible."""

    proto: Literal["tcp", "udp"]
    family: Literal["ipv4", "ipv6", "unix"]
    address: str
    port: int | None
    pid: int | None
    process: str | None


class Ports(TypedDict):
    """``sys.ports``: ``ports`` (``Port`` each, by proto, port, address)."""

    ports: list[Port]


# --------------------------------------------------------------------------- readers


def interface_stats() -> dict[str, InterfaceStats]:
    """Each interface's state (psutil ``net_if_stats``; see ``InterfaceStats``)."""
    out = {}
    for name, st in psutil.net_if_stats().items():
        duplex = str(getattr(st, "duplex", "")).rsplit("_", 1)[-1].lower()
        out[name] = InterfaceStats(bool(st.isup), int(st.speed), int(st.mtu), duplex)
    return out


def interface_addresses() -> dict[str, InterfaceAddresses]:
    """Each interface's MAC and IP addresses (psutil ``net_if_addrs``)."""
    link = getattr(psutil, "AF_LINK", -1)
    out = {}
    for name, entries in psutil.net_if_addrs().items():
        mac = None
        ips: list[InterfaceAddress] = []
        for a in entries:
            if a.family == link:
                mac = a.address
            elif a.family in (socket.AF_INET, socket.AF_INET6):
                ips.append({"family": "ipv4" if a.family == socket.AF_INET else "ipv6",
                            "address": a.address, "netmask": a.netmask,
                            "broadcast": a.broadcast})
        out[name] = InterfaceAddresses(mac, tuple(ips))
    return out


def net_io_counters() -> dict[str, NetIO]:
    """Counters since boot per interface (psutil ``net_io_counters(pernic=True)``; see
    ``NetIO``, without rates)."""
    return {name: cast(NetIO, c._asdict())
            for name, c in (psutil.net_io_counters(pernic=True) or {}).items()}


def route_address() -> str:
    """The source address of the default IPv4 route, as TinyMonitor finds its
    ``ip_private`` (a UDP socket "connected" to 8.8.8.8: a route lookup, no packet is
    sent); ``127.0.0.1`` when there is no route."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("8.8.8.8", 80))
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def local_addresses() -> tuple[str, ...]:
    """Non-loopback, non-link-local IP addresses of the interfaces that are up; IPv4
    first (what an alert names the host by)."""
    try:
        stats = interface_stats()
        addrs = interface_addresses()
    except OSError:
        return ()
    v4: list[str] = []
    v6: list[str] = []
    for nic, entry in addrs.items():
        st = stats.get(nic)
        if st is not None and not st.isup:
            continue
        for a in entry.ips:
            try:
                ip = ipaddress.ip_address(a["address"].split("%", 1)[0])
            except ValueError:
                continue
            if ip.is_loopback or ip.is_link_local:
                continue
            (v4 if ip.version == 4 else v6).append(str(ip))
    return tuple(v4 + v6)


def listening_ports(kind: ConnectionKind = "inet") -> Ports:
    """The ``sys.ports`` result: TCP sockets in LISTEN and unconnected UDP sockets of
    ``kind`` (psutil ``net_connections``; other users' pids need root). Raises
    ``PermissionDenied`` where the platform needs privileges to list sockets at all."""
    try:
        conns = psutil.net_connections(kind=kind)
    except psutil.AccessDenied:
        raise PermissionDenied("listing sockets needs more privileges") from None
    names: dict[int, str] = {}
    rows: list[Port] = []
    for c in conns:
        if c.type == socket.SOCK_STREAM and c.status != psutil.CONN_LISTEN:
            continue
        if c.type == socket.SOCK_DGRAM and c.raddr:
            continue
        fam: Literal["ipv4", "ipv6", "unix"] = (
            "ipv4" if c.family == socket.AF_INET
            else "ipv6" if c.family == socket.AF_INET6 else "unix")
        port: int | None
        if c.laddr and isinstance(c.laddr, tuple):
            address, port = c.laddr[0], c.laddr[1]
        else:
            address, port = (c.laddr or ""), None
        proc_name = None
        if c.pid:
            if c.pid not in names:
                try:
                    names[c.pid] = psutil.Process(c.pid).name()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    names[c.pid] = ""
            proc_name = names[c.pid] or None
        rows.append({"proto": "tcp" if c.type == socket.SOCK_STREAM else "udp",
                     "family": fam, "address": address,
                     "port": port, "pid": c.pid, "process": proc_name})
    rows.sort(key=lambda r: (r["proto"], r["port"] or 0, r["address"]))
    return {"ports": rows}


# --------------------------------------------------------------------------- views


def network_usage(snap: Snapshot) -> NetworkUsage:
    """The ``sys.network`` result: every interface's state and addresses now, with the
    counters and rates ``snap`` has for it."""
    stats = interface_stats()
    addrs = interface_addresses()
    interfaces: list[Interface] = []
    for name in sorted(set(stats) | set(addrs)):
        st = stats.get(name)
        entry = addrs.get(name)
        row: dict[str, Any] = {
            "name": name,
            "isup": st.isup if st else False,
            "speed_mbps": st.speed_mbps if st else 0,
            "mtu_bytes": st.mtu_bytes if st else 0,
            "duplex": st.duplex if st else "",
            "mac": entry.mac if entry else None,
            "addresses": list(entry.ips) if entry else [],
        }
        interfaces.append(cast(Interface, {**row, **snap.net_io.get(name, {})}))
    return {"interfaces": interfaces, "total": snap.net_io_total.copy(),
            "interval_s": round(snap.interval_s, 6), "ts": snap.ts}


def interface_summaries(snap: Snapshot) -> list[InterfaceSummary]:
    """The interfaces with stats, by name, as ``sys.info`` lists them (IP addresses and
    the sampled rates)."""
    stats = interface_stats()
    addrs = interface_addresses()
    out: list[InterfaceSummary] = []
    for name, st in sorted(stats.items()):
        entry = addrs.get(name)
        rates = snap.net_io.get(name, {})
        out.append({"name": name, "isup": st.isup,
                    "addresses": [a["address"] for a in entry.ips] if entry else [],
                    "bytes_sent_per_s": rates.get("bytes_sent_per_s", 0.0),
                    "bytes_recv_per_s": rates.get("bytes_recv_per_s", 0.0)})
    return out
