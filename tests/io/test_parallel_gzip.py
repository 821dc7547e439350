"""Parallel gzip (scripts/io/parallel_gzip.py): one standard gzip member that every reader reads back exactly."""

from __future__ import annotations

import gzip
import zlib

import nibabel as nib
import numpy as np
import pytest
from scripts.io import parallel_gzip
from scripts.io.parallel_gzip import gzip_compress


@pytest.mark.parametrize("size", [0, 1, 1000, (1 << 22) - 1, 1 << 22, 3 * (1 << 22) + 17])
def test_round_trip_and_one_member(size, monkeypatch):
    data = np.random.default_rng(size).integers(0, 40, size, dtype=np.uint8).tobytes()
    for workers in (1, 3):
        packed = gzip_compress(data, max_workers=workers)
        assert gzip.decompress(packed) == data
        # one member: a raw zlib reader that stops at the first member's end reads everything
        reader = zlib.decompressobj(wbits=31)
        assert reader.decompress(packed) == data and reader.eof and reader.unused_data == b""
        assert packed[4:8] == b"\x00\x00\x00\x00"  # no time stamp: the same bytes give the same file
    assert gzip_compress(data, max_workers=3) == gzip_compress(data, max_workers=1)


def test_nifti_written_by_chunks_reads_as_nib_save_wrote_it(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel_gzip, "_CHUNK_BYTES", 4096)  # many chunks from a small image
    ff = np.random.default_rng(0).uniform(0, 100, (30, 20, 11)).astype(np.float32)
    ff[3, 4, 5] = np.nan
    img = nib.Nifti1Image(ff, np.diag([1.1, 1.1, 2.6, 1.0]))
    img.header["descrip"] = b"fat fraction, percent"
    nib.save(img, str(tmp_path / "reference.nii.gz"))
    (tmp_path / "chunked.nii.gz").write_bytes(gzip_compress(img.to_bytes(), max_workers=4))
    reference = gzip.decompress((tmp_path / "reference.nii.gz").read_bytes())
    assert gzip.decompress((tmp_path / "chunked.nii.gz").read_bytes()) == reference
    back = nib.load(str(tmp_path / "chunked.nii.gz"))
    np.testing.assert_array_equal(back.get_fdata(dtype=np.float32), ff)
    np.testing.assert_array_equal(back.affine, nib.load(str(tmp_path / "reference.nii.gz")).affine)


def test_bad_level_refused():
    with pytest.raises(ValueError, match="level must be a zlib compression level 0-9, got 10"):
        gzip_compress(b"x", level=10)
