#!/usr/bin/env bash
# One end of the compatibility matrix: scripts/compat_env.sh compat-oldest|compat-newest [pytest args]
#
# Builds .compat/<env>/venv, a virtualenv LAYERED over the main .venv (made by `make install`):
# a .pth file appends .venv's site-packages after the layer's own, so only what the pins in
# scripts/compat/<env>.txt change (and what pip says must change with them) is installed into
# the layer; everything else (torch, bm3d, scipy, PyQt6, the editable napari-restore, ...)
# comes from .venv. Packages in the layer shadow those of .venv (import order and
# importlib.metadata both take the first on sys.path); pip never uninstalls from .venv (it is
# outside the layer's environment). The layer is rebuilt on every run (about a minute).
# Then it checks that the pins won (`pip check`, versions imported vs installed), runs the
# compat test selection (scripts/compat_matrix.py selection; docs/compatibility.md says which
# tests and why) under Xvfb when there is no display, and writes .compat/<env>/report.json and
# junit.xml, which `scripts/compat_matrix.py record` turns into the docs' matrix.
# Exit status: 0 when the env was built and its tests passed.
set -euo pipefail
cd "$(dirname "$0")/.."
env=${1:?usage: scripts/compat_env.sh compat-oldest|compat-newest [pytest args]}
shift
pins=scripts/compat/$env.txt
[ -f "$pins" ] || { echo "compat_env: no pins file $pins" >&2; exit 2; }
main=.venv
[ -x "$main/bin/python" ] || { echo "compat_env: $main missing; run \`make install\` first" >&2; exit 2; }
dir=.compat/$env
venv=$dir/venv
report=$dir/report.json
py=$venv/bin/python

start=$(date +%s)
rm -rf "$dir"
mkdir -p "$dir"
setup_rc=0
tests_rc=-1
test_seconds=0

write_report() {
  local setup_seconds=$1
  # The report is written by the layer's interpreter when it exists (it sees what tests saw).
  local rp=$py
  [ -x "$rp" ] || rp=$main/bin/python
  "$rp" scripts/compat_matrix.py report --env "$env" --pins "$pins" --layer "$venv" \
    --setup-rc "$setup_rc" --setup-seconds "$setup_seconds" --tests-rc "$tests_rc" \
    --test-seconds "$test_seconds" --junit "$dir/junit.xml" --out "$report"
}

# (Called as `setup || ...`, where `set -e` does not apply: every step returns on failure.)
setup() {
  "$main/bin/python" -m venv --without-pip "$venv" || return
  local main_site layer_site
  main_site=$("$main/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))') || return
  layer_site=$("$py" -c 'import sysconfig; print(sysconfig.get_path("purelib"))') || return
  # addsitedir (not a bare path line) so that .venv's own .pth files (the editable install) run.
  printf 'import site; site.addsitedir(%s)\n' "'$(readlink -f "$main_site")'" \
    > "$layer_site/_napari_restore_main_venv.pth" || return
  # pip itself comes from .venv through the .pth; it installs into the layer (sys.prefix).
  # --upgrade: the newest end takes the newest releases; the oldest end's pins are exact.
  "$py" -m pip install --quiet --upgrade --upgrade-strategy only-if-needed -r "$pins" || return
  # .venv's console scripts (npe2, napari, napari-restore, ...) that the layer did not install,
  # run by the layer's interpreter, so that tests calling sys.executable's neighbours see the
  # pinned versions too.
  local main_py f
  main_py=$(readlink -f "$main")/bin/python
  for f in "$main"/bin/*; do
    [ -f "$f" ] && [ ! -e "$venv/bin/${f##*/}" ] || continue
    [ "$(head -c 2 "$f")" = "#!" ] && [ "$(head -n 1 "$f")" = "#!$main_py" ] || continue
    { echo "#!$(readlink -f "$venv")/bin/python"; tail -n +2 "$f"; } > "$venv/bin/${f##*/}" || return
    chmod +x "$venv/bin/${f##*/}" || return
  done
  "$py" -m pip check || return
  "$py" scripts/compat_matrix.py verify --pins "$pins" --layer "$venv"
}

echo "compat_env: building $env over $main ($(date -u +%H:%M:%S))"
setup || setup_rc=$?
setup_seconds=$(( $(date +%s) - start ))
echo "compat_env: $env setup rc=$setup_rc in ${setup_seconds}s"
if [ "$setup_rc" -ne 0 ]; then
  write_report "$setup_seconds"
  exit 1
fi

# Under no display the GUI tests run on a virtual X server (as `make test`).
xrun=()
if [ -z "${DISPLAY:-}" ]; then
  xrun=(xvfb-run -a -s "-screen 0 1600x1000x24")
fi
mapfile -t selection < <("$py" scripts/compat_matrix.py selection)
t0=$(date +%s)
"${xrun[@]}" "$py" -m pytest -q -p no:cacheprovider --junitxml="$dir/junit.xml" \
  "${selection[@]}" "$@" && tests_rc=0 || tests_rc=$?
test_seconds=$(( $(date +%s) - t0 ))
echo "compat_env: $env tests rc=$tests_rc in ${test_seconds}s"
write_report "$setup_seconds"
[ "$tests_rc" -eq 0 ]
