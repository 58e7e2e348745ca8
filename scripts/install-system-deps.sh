#!/usr/bin/env bash
# System packages the napari GL canvas needs under a virtual display (Debian/Ubuntu), and
# libaom's aomenc/aomdec (aom-tools) for the AV1 film-grain codec tests.
# Idempotent: does nothing when everything is present. Needs root (CI runs as root).
set -euo pipefail

PKGS=(xvfb xauth libgl1 libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxkbcommon0
      libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
      libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libxcb-xkb1 libxcb-util1
      libdbus-1-3 libfontconfig1 libglib2.0-0 aom-tools)

command -v dpkg-query >/dev/null 2>&1 || { echo "install-system-deps: not a Debian system; skipping"; exit 0; }
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing ${missing[*]}; run as root (sudo) to install them" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
