"""The one error type users see: a problem with their input, named with its file."""

from __future__ import annotations

import os


class XanesnetError(ValueError):
    """Bad input: a file, setting or model that xanesnet cannot use.

    The message always says which file (when there is one) and what is wrong,
    in one line, so the CLI can print it as it is. ``message`` is the problem
    alone, for callers that name the file themselves.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{os.fspath(path)}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.line = line
