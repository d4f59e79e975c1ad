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
  echo "# Pinned by 'make lock' from requirements.in (pip freeze of a fresh venv). Install with 'make setup'."
  # the CPU wheel on local disk is torch 2.13.0+cpu; pin the public version so pip takes that file
  "$SCRATCH/venv/bin/python" -m pip freeze | sed 's/^torch==\(.*\)+cpu$/torch==\1/'
} > "$ROOT/requirements.txt"
echo "requirements.txt: $(grep -c '==' "$ROOT/requirements.txt") pins"
