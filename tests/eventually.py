"""Waiting, in tests that drive real processes, for what they do in their own time."""

import time
from collections.abc import Callable


def eventually(attempt: Callable, until: Callable, *, what: str, seconds: float = 30.0):
    """attempt() until until(its result) holds, every 50 ms; its result, or AssertionError
    naming `what` and the last result after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = attempt()
        if until(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}; last: {result!r}")
        time.sleep(0.05)
