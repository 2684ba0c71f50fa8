"""Exit statuses of every command (contract section 1), defined once."""

from __future__ import annotations

EXIT_OK = 0  # done; for ``check``: every host up
EXIT_DOWN = 1  # ``check``: at least one host is not up
EXIT_BAD_INPUT = 2  # a bad file, flag or URL: the message names it
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it
