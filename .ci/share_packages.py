"""Hard-link the packages of this virtual environment into another one, before pip fills it.

CI builds three environments (the bundle's, MONAI Label's, MONAI Deploy's) that hold the same torch, SimpleITK,
scipy, pandas, ... at the same versions: about 1.5 GB each, 6 GB in all, which has run a CI machine out of disk.
Run with the source environment's python; every distribution installed here whose version is the one pinned
(``name==version``) in the given requirements/constraints files is hard-linked into the target's site-packages,
dist-info included, so pip then finds it installed and leaves it. Files outside site-packages (console scripts)
are not linked. When hard links are impossible (another file system) nothing more is linked and pip installs the
rest as usual. Packages are never modified in place by pip or Python (both replace files), so sharing inodes is safe.

Usage: python share_packages.py TARGET_PYTHON REQUIREMENTS [REQUIREMENTS ...]
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(paths: list[str]) -> dict[str, str]:
    pins = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)", line)
            if match:
                pins[canonical(match.group(1))] = match.group(2)
    return pins


def installed_names(site: Path) -> set[str]:
    return {canonical(d.metadata["Name"]) for d in metadata.distributions(path=[str(site)]) if d.metadata["Name"]}


def link_distribution(dist: metadata.Distribution, source_site: Path, target_site: Path) -> int:
    """Link one distribution's files; its dist-info last, so a failure leaves pip a package it sees as absent."""
    files = [Path(dist.locate_file(f)) for f in dist.files or []]
    files = [f.resolve() for f in files if f.is_file()]
    files = [f for f in files if f.is_relative_to(source_site)]
    files.sort(key=lambda f: f.relative_to(source_site).parts[0].endswith(".dist-info"))
    size = 0
    for src in files:
        dst = target_site / src.relative_to(source_site)
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
        size += src.stat().st_size
    return size


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    target_python, requirement_files = argv[0], argv[1:]
    source_site = Path(sysconfig.get_path("purelib")).resolve()
    probe = "import sys, sysconfig; print(sysconfig.get_path('purelib')); print(sys.implementation.cache_tag)"
    target_path, target_tag = subprocess.check_output([target_python, "-c", probe], text=True).split()
    target_site = Path(target_path).resolve()
    if target_tag != sys.implementation.cache_tag:
        # compiled extensions are built for one interpreter: sharing them across versions would break imports
        print(
            f"share_packages: {target_python} is {target_tag}, this is {sys.implementation.cache_tag}; nothing linked"
        )
        return 0
    pins = read_pins(requirement_files)
    present = installed_names(target_site)
    n_linked, size = 0, 0
    for dist in metadata.distributions(path=[str(source_site)]):
        name = canonical(dist.metadata["Name"] or "")
        if name in present or pins.get(name) != dist.version.split("+")[0]:
            continue
        try:
            size += link_distribution(dist, source_site, target_site)
        except OSError as err:
            print(f"share_packages: cannot hard-link into {target_site} ({err}); pip installs the rest")
            break
        n_linked += 1
        present.add(name)
    print(f"share_packages: {n_linked} packages ({size / 2**20:.0f} MiB) linked into {target_site}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
