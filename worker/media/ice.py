"""The candidate-address seam: which local addresses a peer connection offers.

aiortc has no interface filter: every host candidate comes from
``aioice.ice.get_host_addresses``, which leaves out ``127.0.0.1`` and ``::1``.
In a network namespace with only ``lo`` (the test run, the sandbox) an offer
would then carry no candidate at all and the call would silently never
connect. This module is the one place that changes that:

- :func:`install` replaces ``aioice.ice.get_host_addresses`` once per process
  with a wrapper that reads a :class:`contextvars.ContextVar`;
- :func:`pinned_addresses` sets that variable for the code inside the
  ``with`` block (and every task started from it), so candidate gathering
  done there offers exactly the given addresses;
- outside such a block, or with an empty tuple, the wrapper calls aioice's
  own function: all interfaces but loopback, as before.

The override is scoped to a context, not to the process: concurrent sessions
with different address lists do not see each other's. Gathering runs inside
``RTCPeerConnection.setLocalDescription``, so that is the call to wrap.

:func:`ice_servers` turns ``stun:``/``turn:`` URLs from settings into aiortc's
``RTCIceServer`` list. An empty list means no STUN at all: without an explicit
list aiortc asks a public Google STUN server and, offline, gathering stalls
for five seconds.
"""

from __future__ import annotations

import contextvars
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

logger = logging.getLogger(__name__)

_pinned: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "callworker_candidate_addresses", default=()
)
_original: Callable[..., list[str]] | None = None
_install_lock = threading.Lock()


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Stand-in for ``aioice.ice.get_host_addresses`` honouring :func:`pinned_addresses`."""
    pinned = _pinned.get()
    if not pinned:
        assert _original is not None
        return _original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return select_addresses(pinned, use_ipv4=use_ipv4, use_ipv6=use_ipv6)


def select_addresses(addresses: Sequence[str], *, use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """The members of ``addresses`` of the IP versions asked for, in order, without repeats."""
    chosen: list[str] = []
    for address in addresses:
        version = ipaddress.ip_address(address).version
        wanted = (version == 4 and use_ipv4) or (version == 6 and use_ipv6)
        if wanted and address not in chosen:
            chosen.append(address)
    return chosen


def install() -> None:
    """Put the context-aware wrapper in place of aioice's address lookup (idempotent)."""
    global _original
    with _install_lock:
        current = aioice.ice.get_host_addresses
        if current is _host_addresses:
            return
        _original = current
        aioice.ice.get_host_addresses = _host_addresses
        logger.debug("candidate address seam installed over aioice.ice.get_host_addresses")


@contextmanager
def pinned_addresses(addresses: Sequence[str]) -> Iterator[None]:
    """Within the block, ICE gathering offers host candidates on ``addresses`` only.

    An empty sequence keeps aioice's default (every interface but loopback).
    Each address must be an IP literal; a bad one raises ``ValueError``.
    """
    for address in addresses:
        ipaddress.ip_address(address)
    install()
    token = _pinned.set(tuple(addresses))
    try:
        yield
    finally:
        _pinned.reset(token)


def ice_servers(urls: Sequence[str]) -> list[RTCIceServer]:
    """aiortc ICE server entries for ``stun:``/``turn:`` URLs (one entry per URL)."""
    return [RTCIceServer(urls=url) for url in urls]


def rtc_configuration(urls: Sequence[str]) -> RTCConfiguration:
    """An ``RTCConfiguration`` with exactly these ICE servers (none: no STUN stall)."""
    return RTCConfiguration(iceServers=ice_servers(urls))


__all__ = ["ice_servers", "install", "pinned_addresses", "rtc_configuration", "select_addresses"]
