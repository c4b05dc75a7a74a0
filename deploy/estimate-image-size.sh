#!/usr/bin/env bash
# Estimates the size of the Redress image without a container engine: installs the locked wheels for the
# image's platform (CPython 3.11, manylinux x86_64) into a scratch folder exactly as the build stage
# does, compiles them to byte code, and adds the application sources. The base image
# (python:3.11-slim-bookworm) is not included: add its size from `docker image inspect` on a machine
# with Docker. This is an estimate, not a measurement of a built image.
#   bash deploy/estimate-image-size.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

"$python" -m pip install --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --python-version 3.11 --implementation cp --target "$scratch/site-packages" \
    -r "$root/deploy/requirements.lock" 2> >(grep -v "is ignored: it is neither" >&2 || true)
"$python" -m compileall -q -j 0 "$scratch/site-packages" >/dev/null || true
mkdir -p "$scratch/app"
cp -r "$root/shared" "$root/services" "$scratch/app/"
find "$scratch/app" -name '__pycache__' -prune -exec rm -rf {} +
"$python" -m compileall -q -j 0 "$scratch/app" >/dev/null || true

mib() { du -sm "$1" | cut -f1; }
deps="$(mib "$scratch/site-packages")"
app="$(mib "$scratch/app")"
echo "locked dependencies (installed, with byte code): ${deps} MiB"
echo "application sources (with byte code):            ${app} MiB"
echo "image layers added on top of the base image:      $((deps + app)) MiB"
echo "largest packages (MiB):"
du -sm "$scratch/site-packages"/* | sort -rn | head -6 | sed 's#'"$scratch"'/site-packages/#  #'
