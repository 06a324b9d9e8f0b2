#!/usr/bin/env bash
# The two commands of this repository (see README):
#   ./run_all.sh [PRESET] [--overwrite]
#                           set up .venv if needed, then run the notebooks in order with data/presets/PRESET.yaml
#                           (default: demo, the embedded synthetic dataset on a CPU); executed copies go to outputs/PRESET/;
#                           training over runs already in weights/PRESET stops unless --overwrite
#   ./run_all.sh --test     set up .venv if needed, lint and format-check the code (ruff), then run the test suite
set -euo pipefail
cd "$(dirname "$0")"

setup() {
  if [ ! -x .venv/bin/python ]; then
    # PyTorch's wheel comes with its CUDA libraries: the venv takes about 7 GB
    free_gb=$(df -Pk . | awk 'NR == 2 {print int($4 / 1048576)}')
    if [ "$free_gb" -lt 7 ]; then
      echo "run_all.sh: warning: ${free_gb} GB free on the disk of $(pwd); .venv needs about 7 GB" >&2
    fi
    echo "== creating .venv"
    python3 -m venv .venv
  fi
  # reinstall only when the package definition changed since the last install
  if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
    echo "== installing drowsy and its dependencies into .venv"
    # (pip's notes about configured package locations that do not exist are left out of the log)
    { .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 \
        && .venv/bin/python -m pip install --quiet -e ".[test]" 2>&1; } \
      | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    # a kernel spec inside the venv, so papermill runs notebooks with this environment's python (the
    # notebooks name it, display name included, so JupyterLab's autosave leaves their metadata as it is)
    .venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (drowsy)" >/dev/null
    # git stores notebooks without outputs, execution counts or the language_info JupyterLab fills in
    # (.gitattributes names the filter; this checkout's .git/config gets its command)
    if git rev-parse --git-dir >/dev/null 2>&1; then
      .venv/bin/nbstripout --install --attributes .gitattributes --python .venv/bin/python
      git config filter.nbstripout.extrakeys "metadata.language_info"
      # a fresh checkout's notebooks are as new as git's index, so git re-runs the filter on them at every
      # `git status` until the index is written again: write it once now (a few seconds)
      git status --porcelain >/dev/null 2>&1 || true
    fi
    # and JupyterLab saves notebooks/ in that same form (drowsy.notebooks.save_as_committed)
    mkdir -p .venv/etc/jupyter
    echo '{"ContentsManager": {"pre_save_hook": "drowsy.notebooks.save_as_committed"}}' \
      > .venv/etc/jupyter/jupyter_server_config.json
    touch .venv/.installed
  fi
}

setup
if [ "${1:-}" = "--test" ]; then
  shift
  echo "== ruff: lint and format check (pyproject.toml [tool.ruff])"
  .venv/bin/ruff check --quiet . && .venv/bin/ruff format --check --quiet .
  exec .venv/bin/python -m pytest "$@"
fi

overwrite=false
[ "${2:-${1:-}}" = "--overwrite" ] && overwrite=true
[ "${1:-}" = "--overwrite" ] && shift
preset="${1:-demo}"
preset_file="data/presets/${preset}.yaml"
[ -f "$preset_file" ] || { echo "run_all.sh: no preset '$preset' (have: $(ls data/presets | sed 's/\.yaml//' | tr '\n' ' '))" >&2; exit 2; }
out="outputs/${preset}/notebooks"
mkdir -p "$out"
# a key no notebook takes ends the run here, before any work; each notebook is passed only its own keys
.venv/bin/python -m drowsy.notebooks "$preset_file" "outputs/${preset}/parameters"
if [ "$overwrite" = true ]; then
  for stage in 03_train_baseline 04_finetune; do echo "overwrite: true" >> "outputs/${preset}/parameters/${stage}.yaml"; done
fi
# one line per stage and epoch in the log instead of every progress-bar refresh (drowsy.progress)
export DROWSY_PROGRESS=lines
start=$(date +%s)
for notebook in notebooks/[0-9][0-9]_*.ipynb; do
  echo "== $(basename "$notebook") ($preset)"
  began=$(date +%s)
  name=$(basename "$notebook" .ipynb)
  # papermill's cell starts and ends and blank lines are left out of the log
  .venv/bin/papermill --no-progress-bar --log-output -k python3 -f "outputs/${preset}/parameters/${name}.yaml" \
    "$notebook" "$out/${name}.ipynb" 2>&1 | { grep -v -E '^(Ending Cell|Executing Cell|\s*$)' || true; }
  echo "== $(basename "$notebook") done in $(( $(date +%s) - began )) s"
done
.venv/bin/python -m drowsy.viz.summary "$preset_file" --seconds $(( $(date +%s) - start ))
