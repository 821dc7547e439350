"""gzip compression of a large buffer in parallel chunks, written as one standard gzip member (as ``pigz`` does).

An FF map at the reference geometry is 74 MB of float32; zlib compresses it in ~1 s on one core. Deflate streams can
be cut at a byte boundary (a sync flush) and concatenated, and zlib releases the GIL while it compresses, so threads
compress fixed-size chunks side by side. The result is a single gzip member with the CRC-32 and length of the whole
buffer: every gzip reader (Python's ``gzip``, nibabel, zlib's ``gzread`` in ITK and 3D Slicer) reads it as usual.
The header's time stamp is 0, so the same buffer always gives the same file.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

__all__ = ["gzip_compress"]

#: uncompressed bytes per chunk: large enough that the chunks' separate dictionaries cost < 0.1 % in size
_CHUNK_BYTES = 1 << 22
_MAX_WORKERS = 8


def _deflate(chunk: memoryview, level: int, last: bool) -> bytes:
    """Raw deflate of one chunk, ending on a byte boundary (sync flush), or finished for the last chunk."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(chunk) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def gzip_compress(data: bytes | bytearray | memoryview, level: int = 1, max_workers: int | None = None) -> bytes:
    """Compress ``data`` into one gzip member, its chunks compressed in parallel.

    Args:
        data: the uncompressed bytes.
        level: zlib compression level 0-9 (1, nibabel's default for ``.nii.gz``: fast, and image data gains
            little from more).
        max_workers: threads; ``None`` uses one per CPU core (at most 8).

    Returns:
        The gzip file's bytes (``gzip.decompress`` gives ``data`` back).
    """
    if not 0 <= level <= 9:
        raise ValueError(f"level must be a zlib compression level 0-9, got {level}")
    view = memoryview(data).cast("B")
    starts = range(0, max(len(view), 1), _CHUNK_BYTES)
    chunks = [view[s : s + _CHUNK_BYTES] for s in starts]
    last = [i == len(chunks) - 1 for i in range(len(chunks))]
    workers = min(len(chunks), max_workers or min(os.cpu_count() or 1, _MAX_WORKERS))
    if workers <= 1:
        bodies = [_deflate(c, level, end) for c, end in zip(chunks, last)]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip") as pool:
            bodies = list(pool.map(_deflate, chunks, [level] * len(chunks), last))
    # RFC 1952: magic, deflate, no flags, time stamp 0, extra flags (4: fastest, 2: best), OS unknown
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + (b"\x04" if level == 1 else b"\x02" if level == 9 else b"\x00")
    trailer = struct.pack("<II", zlib.crc32(view) & 0xFFFFFFFF, len(view) & 0xFFFFFFFF)
    return header + b"\xff" + b"".join(bodies) + trailer
