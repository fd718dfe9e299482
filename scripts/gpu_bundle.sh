#!/usr/bin/env bash
# `make gpu-bundle`: fill a folder (default .gpu/) with what scripts/gpu_check.sh needs on the
# accelerator machine and that machine lacks. It has Python 3.12 with torch, torchvision,
# lightning, torchmetrics, tokenizers, matplotlib, rich, numpy, pillow, pyyaml, pip and setuptools;
# it has no hydra-core, omegaconf, antlr4 or airbench, no network, and no ../shared beside the
# repo. So the folder holds those four as wheels, the CIFAR-10 archive with its build script, and
# tiny-shakespeare, then a checksum list that the check verifies before it starts.
#
#   scripts/gpu_bundle.sh [OUT_DIR]     PYTHON: a Python with pip and setuptools (.venv/bin/python)
#
# Wheels are fetched from PyPI once and kept in ~/.cache/fmlab/gpu-wheels (FMLAB_WHEEL_CACHE);
# the data comes from ../shared (FMLAB_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.gpu}
python=${PYTHON:-.venv/bin/python}
shared=${FMLAB_SHARED:-$(cd .. && pwd)/shared}
cache=${FMLAB_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fmlab/gpu-wheels}
limit_mib=40  # the machine takes 64 MiB with the repo; keep room for the tracked files

# All four are pure Python, so one wheel serves the machine's 3.12 and the smoke's 3.11. The
# versions are fmlab's own (hydra-core 1.3 needs omegaconf < 2.4, which needs antlr4 4.9.*).
# antlr4 4.9.3 and airbench 0.1.8 are sdists on PyPI: pip builds their wheels here, once.
requirements=(hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 airbench==0.1.8)

wheel_of() {  # the cached wheel of one requirement, by the wheel naming rule (name_with_underscores-version-...)
  local name=${1%%==*} version=${1##*==}
  compgen -G "$cache/${name//-/_}-$version-*none-any.whl" | head -n 1
}

mkdir -p "$cache"
for req in "${requirements[@]}"; do
  if [ -z "$(wheel_of "$req")" ]; then
    "$python" -m pip wheel -q --no-deps --no-build-isolation -w "$cache" "$req"
  fi
  [ -n "$(wheel_of "$req")" ] || { echo "no pure-Python wheel of $req in $cache" >&2; exit 1; }
done

for file in cifar10/cifar10-jpeg-q75.tar.gz cifar10/build.py tinyshakespeare/input.txt; do
  [ -f "$shared/data/$file" ] || {
    echo "$shared/data/$file is missing: set FMLAB_SHARED to the shared folder" >&2
    exit 1
  }
done

# Built afresh each time, so nothing stale travels; the checksum list is written last, so a
# bundle cut short (here or in transfer) is refused by the check rather than half used.
rm -rf "$out"
mkdir -p "$out/wheels" "$out/data/cifar10" "$out/data/tinyshakespeare"
for req in "${requirements[@]}"; do
  cp "$(wheel_of "$req")" "$out/wheels/"
done
cp "$shared/data/cifar10/cifar10-jpeg-q75.tar.gz" "$shared/data/cifar10/build.py" "$out/data/cifar10/"
cp "$shared/data/tinyshakespeare/input.txt" "$out/data/tinyshakespeare/"
chmod -R u+w "$out"  # ../shared is read-only; a copy that cannot be overwritten blocks the next bundle
(cd "$out" && find . -type f ! -name MANIFEST.sha256 -print0 | sort -z | xargs -0 sha256sum >MANIFEST.sha256)

bytes=$(du -sb "$out" | cut -f1)
echo "$out: $((bytes / 1024 / 1024)) MiB ($bytes bytes), limit $limit_mib MiB"
[ "$bytes" -le $((limit_mib * 1024 * 1024)) ] || { echo "$out is over $limit_mib MiB" >&2; exit 1; }
