"""The one error a user's input raises: :class:`DixonInputError`, whose message names the file and the problem."""

from __future__ import annotations

import os

__all__ = ["DixonInputError"]


class DixonInputError(ValueError):
    """A Dixon input that cannot be used as given; the message names the file (or subject) and the problem.

    Attributes:
        file: the offending file, when one file is to blame.
    """

    # str(error) must stay the message alone, so only the message goes to Exception's args
    def __init__(self, message: str, file: str | os.PathLike[str] | None = None) -> None:  # noqa: B042
        super().__init__(message)
        self.file = None if file is None else str(file)
