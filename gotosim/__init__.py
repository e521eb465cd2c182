"""gotosim: a local stand-in for the GoTo cloud (REST, webhooks, a real WebRTC far end)."""
