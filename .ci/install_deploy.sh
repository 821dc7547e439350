#!/usr/bin/env bash
# Create (or bring up to date) <repo>/.venv-deploy: the MONAI Deploy App SDK 4.0.0 environment of deploy/app.py.
# Idempotent: an existing venv whose packages already match requirements-deploy.txt is left as it is.
# torch is constrained to 2.13.0 so pip never fetches another (CUDA) build of it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DEPLOY_VENV:-.venv-deploy}  # DEPLOY_VENV: another location (e.g. to try a fresh install)
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==2.13.0" >"$CONSTRAINTS"
# SHARE_PACKAGES_FROM: a venv's python whose packages at the pinned versions are hard-linked in first (saves disk)
if [ -n "${SHARE_PACKAGES_FROM:-}" ]; then
    "$SHARE_PACKAGES_FROM" .ci/share_packages.py "$VENV/bin/python" requirements-deploy.txt "$CONSTRAINTS"
fi
# torch first, alone, so the resolver never considers another build for the packages that depend on it
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$CONSTRAINTS" -r requirements-deploy.txt
# the App SDK imports holoscan, which needs libcudart.so.13 (present under /usr/local/cuda-13.0 on these machines)
"$VENV/bin/python" -c "import holoscan.core, monai.deploy.core, highdicom, pydicom; print('deploy venv ok:', pydicom.__version__, highdicom.__version__)"
