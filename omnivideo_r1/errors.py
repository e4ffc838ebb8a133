"""The user-error family: problems the user can fix, reported by the CLI as one line with exit status 2.

`omnivideo-r1 <command>` prints `omnivideo-r1 <command>: error: <message>` for these (and for a missing or
unreadable file), with no traceback; anything else is a bug and keeps its traceback. Messages name the file,
record or config key at fault and say what to do.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors a user can fix: a bad command line, recipe, data file, clip or checkpoint."""


class UsageError(UserError, ValueError):
    """A command-line argument that cannot work (unknown benchmark, missing folder, ...)."""


class InputError(UserError, ValueError):
    """An input file the command cannot read as a whole (malformed JSON, wrong format); one bad record inside a
    readable file is skipped or rejected with a counted reason instead."""


class CheckpointError(UserError, ValueError):
    """A model or training checkpoint folder that cannot be loaded."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, FileExistsError, NotADirectoryError,
                                                 IsADirectoryError, PermissionError)
"""What the CLI reports as one line: the family above plus the OS errors of a path that is missing, already there
or unreadable (their messages name the path)."""


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (multi-line messages are joined), or its class name if it has none."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__
