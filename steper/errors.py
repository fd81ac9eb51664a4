"""One exception type for every user-facing error: the entry points print its message, no traceback."""

from __future__ import annotations


class SteperError(Exception):
    """A problem the user can fix (bad config, missing file, malformed data, unreachable server).

    The message must name the thing and say how to fix it.
    """
