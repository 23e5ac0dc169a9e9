#!/usr/bin/env bash
# Run on the GPU machine, from the repository root, with the kit that
# tools/gpu_kit/build.sh made here (.gpu_kit/, carried along): installs its
# wheels into /tmp/site (no network, no dependency resolution), puts
# tools/gpu_kit/mmcv_ext.py there as mmcv's missing compiled extension
# mmcv._ext, prints the versions and runs tools/gpu_check.py with this
# script's arguments.
set -euo pipefail
cd "$(dirname "$0")/../.."

SITE=${GPU_KIT_SITE:-/tmp/site}
WHEELS=${GPU_KIT_DIR:-.gpu_kit}/wheels

shopt -s nullglob
wheels=("$WHEELS"/*.whl)
shopt -u nullglob
if [ ${#wheels[@]} -eq 0 ]; then
    echo "[gpu-kit] no wheels in $WHEELS: run 'make gpu-kit' first" >&2
    exit 1
fi

echo "[gpu-kit] installing ${#wheels[@]} wheels into $SITE"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target "$SITE" "${wheels[@]}"
cp tools/gpu_kit/mmcv_ext.py "$SITE/mmcv/_ext.py"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"

# Versions; a failing import is reported, and the check below still runs.
python3 - <<'PY' || echo "[gpu-kit] the version report failed (above)"
import importlib
import sys

print(f'[gpu-kit] python {sys.version.split()[0]}')
for name in ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet', 'mmseg',
             'timm'):
    try:
        module = importlib.import_module(name)
        print(f'[gpu-kit] {name} {getattr(module, "__version__", "?")} '
              f'({module.__file__})')
    except Exception as e:  # report and go on
        print(f'[gpu-kit] {name}: import failed: {type(e).__name__}: {e}')
try:
    import mmcv.ops  # noqa: F401  (mmcv._ext is the kit's stand-in)
    print('[gpu-kit] mmcv.ops imported')
except Exception as e:
    print(f'[gpu-kit] mmcv.ops: import failed: {type(e).__name__}: {e}')
try:
    import torch
    if torch.cuda.is_available():
        print(f'[gpu-kit] CUDA {torch.version.cuda}: '
              f'{torch.cuda.get_device_name(0)}')
    else:
        print('[gpu-kit] no CUDA')
except Exception as e:
    print(f'[gpu-kit] CUDA: query failed: {type(e).__name__}: {e}')
PY

[ -f tools/gpu_check.py ] || echo "[gpu-kit] tools/gpu_check.py is missing" >&2
exec python3 tools/gpu_check.py "$@"
