"""A free TCP port on 127.0.0.1, for the servers a test starts itself."""

import socket


def free_port() -> int:
    """A port nothing listens on now (another process may still take it before the caller
    binds it: callers that can, retry)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
