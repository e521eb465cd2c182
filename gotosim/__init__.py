"""gotosim: a local stand-in for the GoTo cloud (REST, webhooks, a real WebRTC far end).

``create_app()`` serves a :class:`Simulator` over HTTP (OAuth, the
Notification Channel and Devices and Calls APIs, and the ``/_sim`` control
API); ``gotosim.server.run()`` runs it as a process (``callworker sandbox``).
See docs/sandbox.md.
"""

from gotosim.app import create_app
from gotosim.clock import ManualClock, SystemClock
from gotosim.media import FarEnd, FarEndError, FarEndFactory, StaticFarEnd
from gotosim.model import SimCall, SimConfig
from gotosim.simulator import Simulator

__all__ = [
    "FarEnd",
    "FarEndError",
    "FarEndFactory",
    "ManualClock",
    "SimCall",
    "SimConfig",
    "Simulator",
    "StaticFarEnd",
    "SystemClock",
    "create_app",
]
