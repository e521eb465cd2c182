"""callworker: event-driven call automation for the GoTo Connect Devices and Calls API."""

__version__ = "0.1.0"
