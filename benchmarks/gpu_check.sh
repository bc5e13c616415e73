#!/usr/bin/env bash
# Batched vs one-problem-at-a-time beam search N=16 on 64 problems on this machine's accelerator
# (cuda if there is one, else the CPU, with smaller sizes), for the tiny world and a random
# 120M-parameter Llama: no Ray, no vLLM, no network (benchmarks/gpu_check.py). Ends with one JSON line.
#
#   bash benchmarks/gpu_check.sh          the check, here or on a lent GPU machine (under 8 minutes)
#   bash benchmarks/gpu_check.sh --pack   here, first: copies into .cache/gpu_check/ (ignored by git,
#                                         about 12 MiB) what a bare torch machine lacks, the pure-Python
#                                         packages in PURE and the default tiny-world build; carry that folder
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
PACK=.cache/gpu_check
PURE=(omegaconf antlr4 platformdirs math_verify latex2sympy2_extended)  # beside torch, transformers, scipy, yaml
if [ -n "${PYTHON:-}" ]; then :; elif [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi

if [ "${1:-}" = --pack ]; then
  rm -rf "$PACK" && mkdir -p "$PACK/site" "$PACK/cache/tinyworld"
  "$PYTHON" - "$PACK/site" "${PURE[@]}" <<'EOF'
import importlib, importlib.metadata as metadata, shutil, sys
from pathlib import Path
out, modules = Path(sys.argv[1]), sys.argv[2:]
for module in modules:  # the package and its dist-info: latex2sympy2_extended reads antlr4's version
    shutil.copytree(Path(importlib.import_module(module).__file__).parent, out / module,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in metadata.packages_distributions()[module]:
        info = next(f for f in metadata.distribution(name).files if f.parent.name.endswith(".dist-info"))
        shutil.copytree(info.locate().parent, out / info.parent.name, dirs_exist_ok=True)
EOF
  cp -r "$("$PYTHON" -c "from orchestrator.tinyworld import build; print(build('default').root)")" "$PACK/cache/tinyworld/"
  echo "gpu_check: packed $(du -sh "$PACK" | cut -f1) into $PACK; carry it (the device tool's carry=[\"$PACK\"])"
  exit 0
fi

if [ -d "$PACK/site" ]; then export PYTHONPATH="$PWD/$PACK/site${PYTHONPATH:+:$PYTHONPATH}"; fi
if [ -d "$PACK/cache" ]; then export SCALERUN_CACHE_DIR="${SCALERUN_CACHE_DIR:-$PWD/$PACK/cache}"; fi
missing=$("$PYTHON" -c "import importlib.util, sys; print(*(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))" \
  torch transformers tokenizers safetensors scipy yaml "${PURE[@]}")
if [ -n "$missing" ]; then
  echo "gpu_check: missing Python packages: $missing (run 'bash benchmarks/gpu_check.sh --pack' where they are installed, and carry $PACK)" >&2
  exit 2
fi
exec "$PYTHON" benchmarks/gpu_check.py
