"""What loading a scan tolerated: :class:`ScanNotes`, its warnings (sentences) and corrections (short codes).

Each warning is also issued as a ``RuntimeWarning`` pointing at the caller of :func:`scripts.io.load.load_dixon`;
the FF table's flags, its JSON and the report name the corrections.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field

__all__ = ["ScanNotes"]

_IO_FOLDER = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _first_level_outside_io() -> int:
    """The ``stacklevel`` that makes the ``warnings.warn`` in :meth:`ScanNotes.warn` point at the first frame
    outside scripts/io.

    The loader's checks sit at different call depths; the warning points at the code that called the loader, as
    ``skip_file_prefixes`` does on Python 3.12.
    """
    frame = sys._getframe(2)  # the caller of ScanNotes.warn: stacklevel 2 of its warnings.warn
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_IO_FOLDER):
        frame = frame.f_back
        level += 1
    return level


@dataclass
class ScanNotes:
    """Tolerated problems of one scan.

    Attributes:
        warnings: one sentence per tolerated problem, naming the file.
        corrections: codes of what was corrected or tolerated silently otherwise (``negatives_clipped_water``,
            ``grid_adopted_from_water``, ``grid_within_tolerance``, ``thick_slices``, ``oblique_slices``), each once.
    """

    warnings: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Record ``message`` and issue it as a ``RuntimeWarning`` at the first caller outside scripts/io."""
        self.warnings.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=_first_level_outside_io())

    def correct(self, code: str) -> None:
        """Record a correction code (once)."""
        if code not in self.corrections:
            self.corrections.append(code)
