#!/usr/bin/env bash
# Build the MONAI Label 0.8.5 environment (<repo>/.venv-monailabel) from requirements-monailabel.txt.
#
# Two pip steps, both constrained to torch==2.13.0 (the CPU wheel): every pin except monailabel, with dependency
# resolution; then monailabel alone with --no-deps, because its declared dependencies (sam2 -> torchvision) would
# swap torch for a CUDA build. Idempotent: when the venv already imports monailabel and was built from the same
# requirements file (a stamp holds its hash), nothing is done.
#
# Environment: PYTHON (default python3.11, else python3), MONAILABEL_VENV (default <repo>/.venv-monailabel),
# SHARE_PACKAGES_FROM (a venv's python: its packages at the pinned versions are hard-linked in first, saving disk).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
REQ="$ROOT/requirements-monailabel.txt"
VENV="${MONAILABEL_VENV:-$ROOT/.venv-monailabel}"
STAMP="$VENV/.requirements-monailabel.sha256"
HASH="$(sha256sum "$REQ" | cut -d' ' -f1)"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import monailabel" 2>/dev/null \
    && [ "$(cat "$STAMP" 2>/dev/null)" = "$HASH" ]; then
    echo "install_monailabel: $VENV is up to date (imports monailabel), nothing to do"
    exit 0
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "torch==2.13.0" > "$TMP/constraints.txt"
grep -v '^monailabel==' "$REQ" > "$TMP/requirements.txt"
MONAILABEL_PIN="$(grep '^monailabel==' "$REQ")"
if [ -n "${SHARE_PACKAGES_FROM:-}" ]; then
    "$SHARE_PACKAGES_FROM" "$ROOT/.ci/share_packages.py" "$VENV/bin/python" "$REQ" "$TMP/constraints.txt"
fi

PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$TMP/constraints.txt")
"${PIP[@]}" -r "$TMP/requirements.txt"
"${PIP[@]}" --no-deps "$MONAILABEL_PIN"

# fail here, not in the tests, if the environment cannot run the server or lost the CPU torch
"$VENV/bin/python" - <<'EOF'
import torch, monai, monailabel, monailabel.app  # noqa: F401  (the server's FastAPI app and its imports)
assert torch.__version__.split("+")[0] == "2.13.0", f"torch {torch.__version__} instead of 2.13.0"
print(f"install_monailabel: monailabel {monailabel.__version__}, monai {monai.__version__}, torch {torch.__version__}")
EOF
echo "$HASH" > "$STAMP"
