#!/usr/bin/env bash
# Installs the Python packages the test suite drives the servers with (the official
# `openai` client, for inference/tests/server_openai_py.rs) into the user site, quietly,
# only when they are missing. Safe to run repeatedly.
set -euo pipefail

PYTHON="${PYTHON:-python3}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup-python: $PYTHON not found; the Python client tests will be skipped" >&2
    exit 0
fi

if "$PYTHON" -c "import openai" >/dev/null 2>&1; then
    exit 0
fi

# --user keeps system site-packages untouched; inside a virtualenv --user is refused, so
# fall back to a plain install there.
if ! "$PYTHON" -m pip install --quiet --disable-pip-version-check --user openai 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check openai
fi
"$PYTHON" -c "import openai; print('setup-python: openai', openai.__version__)"
