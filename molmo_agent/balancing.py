"""Several molmo-agent servers behind one client: which channel target and settings gRPC gets for a pool.

gRPC balances by itself once it knows several addresses: its ``round_robin`` policy keeps a connection
(subchannel) to every server and sends each call to the next one that is ready. A server that goes away
drops out of the rotation, and its subchannel reconnects with backoff until it is back. With client-side
health checking a server also drops out while its health says NOT_SERVING (model still loading, or a
graceful shutdown under way), so a restarted server rejoins only when it can answer. This module only
decides names and settings; it imports neither grpc nor anything heavy.

Address forms (what :func:`server_target` accepts):

- ``"host:port"``: one server, exactly as before (gRPC's default ``pick_first``, DNS resolution by gRPC).
- ``"h1:p1,h2:p2"`` or ``["h1:p1", "h2:p2"]``: a fixed pool. gRPC's own list targets (``ipv4:`` and
  ``ipv6:``) take IP literals only, so host names are resolved here, once, when the client is made; a pool
  whose addresses change belongs behind a DNS name instead.
- ``"dns:///name:port"``: every address DNS gives for ``name``, re-resolved by gRPC when servers fail.
- ``"ipv4:..."``/``"ipv6:..."``: passed through and balanced; any other ``scheme:`` target passes through as
  one server.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import MolmoAgentError

SERVICE = "molmo_agent.v1.MolmoAgent"
RETRIED_METHODS = ("Point", "Act", "Generate", "GetModelInfo")
"""Unary calls gRPC may send again on another server: each is a pure function of its request (greedy
decoding), so a repeat costs time but never changes an answer. StreamPoint is never retried."""
RETRY_ATTEMPTS = 2
"""One retry at gRPC's level, on the next server in the rotation; the client's own UNAVAILABLE loop (with
backoff, within the call's deadline) covers longer outages."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


class TargetError(MolmoAgentError, ValueError):
    """An address list that cannot become a channel target (bad ``host:port``, unresolvable host)."""


@dataclass(frozen=True)
class ServerTarget:
    """Where a channel connects: the target gRPC resolves, and how to talk to what it finds."""

    target: str
    """The channel target handed to gRPC (``host:port``, ``ipv4:a:p,b:p``, ``dns:///name:port``...)."""
    description: str
    """The addresses as the user gave them, for error messages."""
    balanced: bool
    """True for a pool: round-robin, health-checked subchannels, one retry on another server."""
    server_name: str | None = None
    """The host name TLS checks certificates against when the target itself holds none (a resolved list)."""


def split_addresses(addresses: str | Sequence[str]) -> list[str]:
    """``"a:1, b:2"`` or ``["a:1", "b:2"]`` -> ``["a:1", "b:2"]``; an ``ipv4:``/``ipv6:`` list stays whole."""
    if isinstance(addresses, str):
        if "," not in addresses or _scheme(addresses) in ("ipv4", "ipv6"):  # gRPC's own list targets
            return [addresses.strip()]
        addresses = addresses.split(",")
    parts = [address.strip() for address in addresses if address.strip()]
    if not parts:
        raise TargetError(
            "no server address given: pass HOST:PORT, a comma-separated list, or dns:///NAME:PORT"
        )
    return parts


def server_target(addresses: str | Sequence[str]) -> ServerTarget:
    """The channel target for one server or a pool (see the module docstring for the forms).

    Raises:
        TargetError: An entry is not ``host:port``, or a host name of a list does not resolve.
    """
    parts = split_addresses(addresses)
    description = ",".join(parts)
    if len(parts) == 1:
        scheme = _scheme(parts[0])
        balanced = scheme in ("dns", "ipv4", "ipv6") and (scheme == "dns" or "," in parts[0])
        name = _dns_host(parts[0]) if scheme == "dns" else None
        return ServerTarget(parts[0], description, balanced, name)
    schemed = [part for part in parts if _scheme(part)]
    if schemed:
        raise TargetError(f"a list of servers holds HOST:PORT entries only, not {schemed[0]!r}")
    endpoints = [host_port(part) for part in parts]
    first_host = endpoints[0][0]
    return ServerTarget(_address_list(endpoints), description, True, first_host)


def host_port(address: str) -> tuple[str, int]:
    """``"host:port"`` / ``"[v6]:port"`` -> ``(host, port)``; the port is required.

    Raises:
        TargetError: No port, a port that is not a number in 1-65535, or an empty host.
    """
    host, sep, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TargetError(f"{address!r} is not HOST:PORT (e.g. 10.0.0.7:50051 or gpu-1:50051)")
    return host, int(port)


def _scheme(target: str) -> str | None:
    """``"dns"`` for ``"dns:///x:1"``; ``None`` for ``"host:port"`` (whose "scheme" would be the host)."""
    match = _SCHEME.match(target)
    if match is None or target[match.end() :].split(",", 1)[0].isdigit():
        return None
    return match.group(1).lower()


def _dns_host(target: str) -> str | None:
    """The name in ``dns:[//authority/]name:port``, which TLS checks certificates against."""
    path = target.partition(":")[2]
    if path.startswith("//"):
        path = path[2:].partition("/")[2]
    try:
        return host_port(path)[0]
    except TargetError:
        return path or None


def _address_list(endpoints: Sequence[tuple[str, int]]) -> str:
    """gRPC's ``ipv4:a:p,b:p`` (or ``ipv6:[a]:p,...``) for a fixed pool; names are resolved now.

    IPv4 is used when every server has an IPv4 address, else IPv6 when every one has an IPv6 address:
    one channel target holds one family.
    """
    resolved = [(_resolve(host, port), port) for host, port in endpoints]
    for family, scheme in ((4, "ipv4"), (6, "ipv6")):
        chosen = [([ip for ip in ips if ip.version == family], port) for ips, port in resolved]
        if all(ips for ips, _ in chosen):
            seen: dict[str, None] = {}
            for ips, port in chosen:
                for ip in ips:
                    seen[f"[{ip}]:{port}" if family == 6 else f"{ip}:{port}"] = None
            return f"{scheme}:{','.join(seen)}"
    found = [
        f"{host} has {', '.join(map(str, ips))}"
        for (host, _), (ips, _) in zip(endpoints, resolved, strict=True)
    ]
    raise TargetError(
        "the servers of a list must all have an IPv4 address or all an IPv6 address: " + "; ".join(found)
    )


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """IP literals as they are; names through the system resolver, in its order, without repeats."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetError(f"cannot resolve server host {host!r}: {exc}") from None
    found = dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos)
    return list(found)


def service_config() -> str:
    """gRPC's service config for a pool (JSON): round-robin over health-checked servers, one retry.

    ``healthCheckConfig`` makes each subchannel watch ``grpc.health.v1`` for the MolmoAgent service, so a
    server that is loading its model or draining is skipped instead of answering UNAVAILABLE.
    """
    retry = {
        "maxAttempts": RETRY_ATTEMPTS,
        "initialBackoff": "0.05s",
        "maxBackoff": "0.5s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    names = [{"service": SERVICE, "method": method} for method in RETRIED_METHODS]
    names.append({"service": "grpc.health.v1.Health", "method": "Check"})
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": SERVICE},
        "methodConfig": [{"name": names, "retryPolicy": retry}],
    }
    return json.dumps(config)


__all__ = ["ServerTarget", "TargetError", "host_port", "server_target", "service_config", "split_addresses"]
