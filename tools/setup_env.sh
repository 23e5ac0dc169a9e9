#!/usr/bin/env bash
# Create or refresh the project's virtual environment (default .venv) with the
# pinned stack of requirements/. mmcv has no wheels on PyPI, so its compiled ops
# are built from source once per (mmcv, torch, python) and the wheel is cached
# outside the repository; a new torch version gets a new build.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
MMCV_VERSION=2.1.0
CACHE_ROOT=${LITV2_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/litv2/wheels}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

echo "[setup] torch stack"
pip install -q -r requirements/torch.txt

key=$("$PY" -c 'import sys, torch; print(f"torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}")')
wheel_dir="$CACHE_ROOT/mmcv-$MMCV_VERSION-$key"
wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
    echo "[setup] building mmcv $MMCV_VERSION with its ops against $key (about 10 min on 2 cores)"
    # mmcv's setup.py imports pkg_resources (gone from setuptools >= 70).
    pip install -q -r requirements/build.txt 2>&1 | grep -v -e "requires setuptools" -e "dependency resolver" || true
    src=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: -d "$src" "mmcv==$MMCV_VERSION"
    tar -xzf "$src"/mmcv-"$MMCV_VERSION".tar.gz -C "$src"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i "s/-std=c++17/-std=c++20/g" "$src/mmcv-$MMCV_VERSION/setup.py"
    mkdir -p "$wheel_dir"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        pip wheel -q --no-build-isolation --no-deps --no-cache-dir \
        -w "$wheel_dir" "$src/mmcv-$MMCV_VERSION"
    rm -rf "$src"
    wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
fi

echo "[setup] mmcv from $wheel"
if ! "$PY" -c "import mmcv, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null \
   || [ "$(cat "$VENV/.mmcv-wheel" 2>/dev/null)" != "$wheel" ]; then
    pip install -q --force-reinstall --no-deps "$wheel"
    echo "$wheel" > "$VENV/.mmcv-wheel"
fi

echo "[setup] OpenMMLab, timm and test packages"  # (also restores setuptools >= 77)
pip install -q "$wheel" -r requirements/runtime.txt -r requirements/tests.txt
pip install -q --no-deps --no-build-isolation -e .

"$PY" - <<'PY'
import mmcv, mmdet, mmengine, mmseg, timm, torch, torchvision
from mmcv.ops import RoIAlign, nms, deform_conv2d  # noqa: F401  compiled ops
import mmdet_litv2, mmseg_litv2  # noqa: F401
print(f'[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, '
      f'mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, '
      f'mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, timm {timm.__version__}')
PY
