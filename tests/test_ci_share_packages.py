"""`.ci/share_packages.py`: CI's three environments share pinned packages by hard links instead of three copies."""

import os
import subprocess
import sys
import venv
from importlib import metadata
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "share_packages.py"


def _site(python: Path) -> Path:
    out = subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
    )
    return Path(out.strip())


@pytest.fixture()
def target_python(tmp_path: Path) -> Path:
    venv.EnvBuilder(with_pip=False).create(tmp_path / "env")
    return tmp_path / "env" / "bin" / "python"


def test_pinned_package_is_hard_linked_and_importable(tmp_path, target_python):
    six_version = metadata.version("six")
    req = tmp_path / "requirements.txt"
    # six at its installed version is shared; numpy at another version and an unknown package are not
    req.write_text(f"# comment\nsix=={six_version}\nnumpy==0.0.1\nnot-installed-anywhere==1.0\n")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(target_python), str(req)], capture_output=True, text=True, check=True
    ).stdout
    assert "1 packages" in out

    site = _site(target_python)
    src = Path(metadata.distribution("six").locate_file("six.py"))
    dst = site / "six.py"
    assert os.stat(src).st_ino == os.stat(dst).st_ino, "a copy, not a hard link"
    assert not (site / "numpy").exists()
    # the target environment sees the package as installed, at the pinned version (pip then leaves it alone)
    probe = "import six, importlib.metadata as m; print(m.version('six'))"
    assert subprocess.check_output([str(target_python), "-c", probe], text=True).strip() == six_version

    # a second run finds it installed and links nothing more
    again = subprocess.run(
        [sys.executable, str(SCRIPT), str(target_python), str(req)], capture_output=True, text=True, check=True
    ).stdout
    assert "0 packages" in again


def test_usage_error_without_requirements(target_python):
    result = subprocess.run([sys.executable, str(SCRIPT), str(target_python)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Usage" in result.stderr
