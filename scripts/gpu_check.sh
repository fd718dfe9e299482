#!/usr/bin/env bash
# The GPU check (README, "GPU check"). On the accelerator machine, from the project root, with
# .gpu/ (make gpu-bundle) carried beside the tracked files:
#
#   bash scripts/gpu_check.sh              # then $OUT/gpu_report.md (or <work>/gpu_report.md)
#   bash scripts/gpu_check.sh --cpu-smoke  # the same on this CPU, every part shrunk to seconds
#
# Installs what the machine lacks from .gpu/ into its Python (no network there: only the bundled
# files, never an index), fmlab itself editable (fmlab.CONF_DIR is found from the source file), and
# hands over to scripts/gpu_check.py, which builds the data and runs the parts within 9 minutes.
#
# --cpu-smoke installs into a stand-in for the machine's Python instead: a throw-away venv that
# sees the packages of fmlab's own venv (GPU_CHECK_PYTHON, default .venv/bin/python) except those
# the machine lacks, so that a missing wheel or a stray import of wandb fails here as it would
# there. Other settings: GPU_CHECK_PYTHON (the machine's Python, default python3), GPU_CHECK_WORK
# (data, runs and logs; default $TMPDIR/fmlab-gpu-check), OUT (where the report goes).
set -euo pipefail
started=$(date +%s)  # the 9 minutes count from here: installs and data build included
cd "$(dirname "$0")/.."
smoke=()
case "${1:-}" in
  --cpu-smoke) smoke=(--cpu-smoke) ;;
  "") ;;
  *) echo "usage: $0 [--cpu-smoke]" >&2; exit 2 ;;
esac
bundle=.gpu
work=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/fmlab-gpu-check}
unset PYTHONPATH  # the check runs the fmlab it installs, never a source tree put on the path
die() { echo "gpu_check: $*" >&2; exit 1; }

[ -f "$bundle/MANIFEST.sha256" ] || die "no $bundle/ here: run \`make gpu-bundle\` and carry $bundle"
(cd "$bundle" && sha256sum --quiet -c MANIFEST.sha256) || die "$bundle/ is incomplete: bundle it again"

# Hidden from the stand-in: what the accelerator machine does not have (fmlab, hydra and its
# plugins, omegaconf, antlr4, wandb, optuna, submitit) and editable-install hooks.
stand_in() {
  local host=$1 env=$2 host_site env_site entry name
  rm -rf "$env"
  "$host" -m venv --without-pip "$env"  # pip, setuptools and the rest come from the host
  host_site=$("$host" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  env_site=$("$env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir "$env/host-site"
  for entry in "$host_site"/*; do
    name=${entry##*/}
    case "${name,,}" in
      fmlab* | hydra* | omegaconf* | antlr4* | wandb* | optuna* | submitit* | __editable__*) ;;
      *) ln -s "$entry" "$env/host-site/$name" ;;
    esac
  done
  # A .pth line that imports runs at start-up: addsitedir also reads the host's own .pth files.
  echo "import site; site.addsitedir('$env/host-site')" >"$env_site/zz_host_site.pth"
}

mkdir -p "$work"
if [ ${#smoke[@]} -gt 0 ]; then
  stand_in "${GPU_CHECK_PYTHON:-.venv/bin/python}" "$work/machine-python"
  python=$work/machine-python/bin/python
else
  python=${GPU_CHECK_PYTHON:-python3}
fi
"$python" -c "import torch" || die "$python has no torch: set GPU_CHECK_PYTHON"

# --isolated: no pip configuration or PIP_* variable may add an index or find-links location.
install() { "$python" -m pip --isolated install -q --no-index --no-deps --no-input "$@"; }
install "$bundle"/wheels/*.whl
install --no-build-isolation -e .
scripts=$("$python" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
[ -x "$scripts/fmlab-train" ] || die "the install made no $scripts/fmlab-train"

exec "$python" scripts/gpu_check.py --work "$work" --started "$started" "${smoke[@]}"
