#!/usr/bin/env bash
# Build the GPU kit: .gpu_kit/wheels/ holds every wheel that a GPU machine
# without network (CPython 3.12, x86-64, torch/torchvision/numpy/timm already
# there) lacks to run this project with mmcv/mmengine/mmdet/mmseg:
#   - mmengine, mmdet, mmsegmentation and timm at the pins of
#     requirements/runtime.txt;
#   - mmcv at its pin, built here from the sdist WITHOUT compiled ops
#     (MMCV_WITH_OPS=0: a pure-Python "mmcv-lite" wheel, seconds to build);
#     tools/gpu_kit/mmcv_ext.py stands in for the missing mmcv._ext there;
#   - the packages those import at import time that the GPU machine lacks
#     (EXTRA below).
# tools/gpu_kit/run.sh installs the kit there (the stand-in for mmcv._ext from
# its place in tools/gpu_kit/) and runs tools/gpu_check.py.
# Wheels already in the kit are kept (delete .gpu_kit/ to rebuild); a wheel of
# another version of a kit package, or of a package not in the kit, is removed,
# so the kit holds exactly one version of each package.
#
# GPU_KIT_DIR (default .gpu_kit) and GPU_KIT_PYTHON_VERSION (default 3.12)
# build a kit for another interpreter, e.g. to try the kit on this machine.
set -euo pipefail
cd "$(dirname "$0")/../.."

KIT=${GPU_KIT_DIR:-.gpu_kit}
PYVER=${GPU_KIT_PYTHON_VERSION:-3.12}
WHEELS=$KIT/wheels
MAX_MB=60

# Imported at import time by mmengine, mmcv, mmdet, mmseg (or by these) and
# missing on the GPU machine; the versions `make env` installs in .venv.
EXTRA=(
    addict==2.4.0           # mmengine / mmcv Config
    yapf==0.43.0            # mmengine Config (formatting)
    platformdirs==4.14.9    # yapf
    termcolor==3.3.0        # mmengine logging
    terminaltables==3.1.10  # mmdet evaluation
    pycocotools==2.0.11     # mmdet datasets (compiled)
    shapely==2.2.0          # mmdet structures (compiled)
    prettytable==3.19.0     # mmseg evaluation
    ftfy==6.3.1             # mmseg tokenizer
    wcwidth==0.9.4          # ftfy, prettytable
    # mmengine 0.10.7 resolves 'mmdet::' / 'mmseg::' config bases with
    # pkg_resources, gone from setuptools >= 82 (the version a fresh torch
    # install may bring there); this one is within runtime.txt's range.
    setuptools==81.0.0
)

# The pin of a package in requirements/runtime.txt.
pin() {
    local v
    v=$(sed -n "s/^$1==\([^ ;#]*\).*/\1/p" requirements/runtime.txt)
    if [ -z "$v" ]; then
        echo "[gpu-kit] no pin of $1 in requirements/runtime.txt" >&2
        exit 1
    fi
    echo "$1==$v"
}
MMCV=$(pin mmcv)
MAIN=("$(pin mmengine)" "$(pin mmdet)" "$(pin mmsegmentation)" "$(pin timm)")
MMCV_VERSION=${MMCV#mmcv==}

# Wheel file names spell a project name lower- or mixed-case, '-' and '.' as
# '_'; names are compared in that form.
norm() { local n=${1,,}; n=${n//-/_}; echo "${n//./_}"; }

declare -A WANT  # normalized name -> version
for spec in "${MAIN[@]}" "${EXTRA[@]}"; do
    WANT[$(norm "${spec%%==*}")]=${spec#*==}
done
WANT[mmcv_lite]=$MMCV_VERSION

# Drop wheels that are not (or no longer) part of the kit; HAVE: normalized
# name -> version of the wheels kept.
declare -A HAVE
mkdir -p "$WHEELS"
for whl in "$WHEELS"/*.whl; do
    [ -e "$whl" ] || continue
    file=${whl##*/}
    name=$(norm "${file%%-*}")
    rest=${file#*-}
    version=${rest%%-*}
    if [ "${WANT[$name]:-}" = "$version" ] && [ -z "${HAVE[$name]:-}" ]; then
        HAVE[$name]=$version
    else
        echo "[gpu-kit] removing $file (not one of the kit's wheels)"
        rm -f "$whl"
    fi
done

missing=()
for spec in "${MAIN[@]}" "${EXTRA[@]}"; do
    [ -n "${HAVE[$(norm "${spec%%==*}")]:-}" ] || missing+=("$spec")
done
need_mmcv=0
[ -n "${HAVE[mmcv_lite]:-}" ] || need_mmcv=1

if [ ${#missing[@]} -gt 0 ] || [ $need_mmcv = 1 ]; then
    # A scratch virtualenv with mmcv's build requirements (its setup.py
    # imports pkg_resources: setuptools < 70) runs every pip step.
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    python3 -m venv "$tmp/venv"
    PIP=("$tmp/venv/bin/python" -m pip --disable-pip-version-check)
    "${PIP[@]}" install -q -r requirements/build.txt

    if [ ${#missing[@]} -gt 0 ]; then
        echo "[gpu-kit] downloading ${missing[*]}" \
            "(CPython $PYVER, manylinux x86-64)"
        "${PIP[@]}" download -q --no-deps --only-binary=:all: \
            --python-version "$PYVER" --implementation cp \
            --platform manylinux_2_28_x86_64 \
            --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 \
            -d "$WHEELS" "${missing[@]}"
    fi

    if [ $need_mmcv = 1 ]; then
        echo "[gpu-kit] building $MMCV without compiled ops (MMCV_WITH_OPS=0)"
        "${PIP[@]}" download -q --no-deps --no-binary :all: \
            --no-build-isolation -d "$tmp" "$MMCV"
        tar -xzf "$tmp/mmcv-$MMCV_VERSION.tar.gz" -C "$tmp"
        MMCV_WITH_OPS=0 "${PIP[@]}" wheel -q --no-deps --no-build-isolation \
            --no-cache-dir -w "$WHEELS" "$tmp/mmcv-$MMCV_VERSION"
    fi
fi

# Exactly one wheel of each kit package, nothing else.
declare -A COUNT
for whl in "$WHEELS"/*.whl; do
    [ -e "$whl" ] || continue
    file=${whl##*/}
    name=$(norm "${file%%-*}")
    COUNT[$name]=$(( ${COUNT[$name]:-0} + 1 ))
    if [ -z "${WANT[$name]:-}" ]; then
        echo "[gpu-kit] unexpected $file" >&2
        exit 1
    fi
done
for name in "${!WANT[@]}"; do
    if [ "${COUNT[$name]:-0}" != 1 ]; then
        echo "[gpu-kit] expected one wheel of $name ${WANT[$name]}," \
            "found ${COUNT[$name]:-0}" >&2
        exit 1
    fi
done

ls -1 "$WHEELS"
bytes=$(cat "$WHEELS"/*.whl | wc -c)
mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "[gpu-kit] $WHEELS: ${#WANT[@]} wheels, $mb MB (limit $MAX_MB MB)"
if [ "$bytes" -ge $((MAX_MB * 1048576)) ]; then
    echo "[gpu-kit] the kit is over $MAX_MB MB" >&2
    exit 1
fi
