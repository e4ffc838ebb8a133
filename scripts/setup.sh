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
pip_install() {
  # This machine's pip configuration lists package indexes that may be absent; pip warns once per package about
  # them. Those lines are dropped so real errors stay visible; pip's exit status is kept.
  .venv/bin/python -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip_install --upgrade pip
pip_install "torch==2.13.0"
pip_install -e ".[test,embed]"
echo "$want" > "$stamp"
