#!/usr/bin/env bash
# Create .venv and install omnivideo-r1 with its test extras. Idempotent: reruns are no-ops unless pyproject.toml changed.
# torch is pinned to the 2.13.0 CPU build; installing it first keeps pip from resolving a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.omnivideo-r1-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,embed]"
echo "$want" > "$stamp"
