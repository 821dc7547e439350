"""Atomic file writes: a temporary file in the target's folder, flushed, then ``os.replace``.

A killed run therefore leaves either the old file or the new one, never half a table; and a write that would
replace different content can be refused, so a run never silently overwrites a user's earlier outputs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "publish_folder"]


def _default_mode() -> int:
    # mkstemp creates 0600 files; give results the permissions a plain open() would have. The umask can only be
    # read by setting it, so it is restored at once.
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None], suffix: str = ".tmp") -> Path:
    """Create ``path`` atomically: ``write(tmp)`` fills a temporary file, which then replaces ``path``.

    Args:
        path: the target file; its folder is created.
        write: callable that writes the complete content to the temporary path it is given.
        suffix: suffix of the temporary name (writers that pick a format by extension, such as nibabel's
            ``.nii.gz``, need theirs).

    Returns:
        the target path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, target)
    except BaseException:
        # never leave a half-written temporary file behind
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike[str], payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (fsynced before the replace)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike[str], text: str, overwrite: bool = False) -> bool:
    """Write UTF-8 ``text`` to ``path`` atomically, refusing to replace different content unless ``overwrite``.

    Args:
        path: target file; its folder is created.
        text: the content.
        overwrite: replace an existing file whose content differs.

    Returns:
        True when the file was written, False when it already held exactly ``text`` (left untouched).

    Raises:
        FileExistsError: the file exists with different content and ``overwrite`` is False (names the file).
    """
    target = Path(path)
    if target.exists():
        if target.read_text(encoding="utf-8") == text:
            return False
        if not overwrite:
            raise FileExistsError(f"{target} exists with different content; pass overwrite=True to replace it")
    atomic_write_bytes(target, text.encode("utf-8"))
    return True


def publish_folder(staged: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Put the finished folder ``staged`` in the place of ``target``, replacing an earlier ``target`` whole.

    Both are renames on one file system: readers see either the old folder or the new one, never a mix of files of
    two runs. Between the two renames ``target`` is briefly absent (a directory cannot be swapped in one portable
    call); a run killed there has no results for the subject, which the next run redoes. The old folder is deleted
    afterwards.

    Args:
        staged: the folder holding the new results (removed by the move).
        target: where the results belong.

    Returns:
        ``target``.
    """
    staged, target = Path(staged), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.replace(staged, target)
        return target
    old = staged.with_name(f"{staged.name}.replaced.{os.getpid()}")
    os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)
    return target
