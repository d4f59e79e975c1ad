#!/usr/bin/env bash
# Re-pin requirements.txt: install requirements.in into a scratch venv and freeze it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
python3.11 -m venv "$SCRATCH/venv"
"$SCRATCH/venv/bin/python" -m pip install --quiet --upgrade pip
"$SCRATCH/venv/bin/python" -m pip install --quiet -r "$ROOT/requirements.in"
{
  echo "# Pinned by 'make lock' from requirements.in (installed into a fresh venv, then scripts/freeze.py)."
  echo "# Install with 'make setup'."
  "$SCRATCH/venv/bin/python" "$ROOT/scripts/freeze.py"
} > "$ROOT/requirements.txt"
echo "requirements.txt: $(grep -c '==' "$ROOT/requirements.txt") pins"
