"""The one error type for problems of set-up.

Failures inside a batch are data (a generation's ``error``); a missing model file, an unknown
attack name or an unreadable database raise :class:`SaferlabError`, which the front ends turn
into one line on stderr (CLI) or a modal (TUI).
"""

from __future__ import annotations


class SaferlabError(Exception):
    """A set-up problem with a message meant for the user and a process exit code."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


# Exit codes the CLI uses, named so tests and scripts can rely on them.
EXIT_USAGE = 2  # unknown name, bad option value
EXIT_MODEL = 3  # model missing, unreadable or not GGUF
EXIT_DATABASE = 4  # database unreadable or of an unknown schema
EXIT_ITEMS_FAILED = 5  # every item of a run failed (a server down, a key refused)
EXIT_CANCELLED = 130  # the user interrupted a run
