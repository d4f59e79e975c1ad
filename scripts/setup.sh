#!/usr/bin/env bash
# One setup path for the PLD workspace (run through `make setup`).
#
# Fresh Debian machine -> Debian libraries, .venv with pinned ROS 2 Kilted wheels + MuJoCo + JAX + torch,
# CMake path rewrite of the ROS wheels, colcon build, env.sh. Every step is skipped when its inputs
# have not changed since it last succeeded (stamps in .venv/.pld-stamps), so a second run takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMPS="$VENV/.pld-stamps"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST  # nothing started here may leave loopback

# Debian packages: build tools for the interface package, EGL/OSMesa for offscreen MuJoCo rendering.
DEBIAN_PACKAGES=(cmake make g++ libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libosmesa6)

step() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[setup] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Prints a hash of the given files' contents (missing files hash as empty).
hash_files() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

install_debian_packages() {
  local missing=()
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && { step "Debian packages: all present"; return; }
  if [ "$(id -u)" -ne 0 ]; then
    die "missing Debian packages: ${missing[*]}.
  Install them as root, then run 'make setup' again:
    sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  fi
  step "Debian packages: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"; return
    fi
  done
  die "Python 3.11 not found (the ROS 2 Kilted wheels are built for CPython 3.11). Install python3.11 and re-run."
}

# pip, minus the warnings about this machine's optional local indexes that lack a package.
pip_quiet() {
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 |
    { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

create_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    step "creating .venv"
    "$(find_python)" -m venv "$VENV"
  fi
  local want; want=$(hash_files requirements.txt)
  if stamp_ok requirements "$want"; then
    step "Python packages: up to date with requirements.txt"
    return
  fi
  step "Python packages: installing requirements.txt (first time: about 2 minutes)"
  pip_quiet --upgrade pip
  pip_quiet -r requirements.txt
  # A changed set of message wheels brings fresh CMake files that need the rewrite again.
  rm -f "$STAMPS/cmake-paths" "$STAMPS/colcon"
  stamp_set requirements "$want"
}

fix_cmake_paths() {
  stamp_ok cmake-paths done && return
  step "rewriting build-machine paths in the ROS wheels' CMake files"
  "$VENV/bin/python" scripts/fix_wheel_cmake_paths.py "$VENV"
  stamp_set cmake-paths done
}

# What colcon needs to rebuild for: package manifests, interface definitions, and the set of files
# (with --symlink-install, edits to existing Python files need no rebuild; new files do).
colcon_inputs_hash() {
  {
    find src -type f -not -path '*/__pycache__/*' -not -name '*.pyc' | LC_ALL=C sort
    find src \( -name package.xml -o -name setup.py -o -name setup.cfg -o -name CMakeLists.txt \
      -o -name '*.msg' -o -name '*.srv' -o -name '*.action' \) -type f | LC_ALL=C sort | xargs cat
    cat colcon.meta
  } | sha256sum | cut -d' ' -f1
}

colcon_build() {
  local want; want=$(colcon_inputs_hash)
  if stamp_ok colcon "$want" && [ -f install/setup.bash ]; then
    step "colcon build: up to date"
    return
  fi
  step "colcon build (about 1 minute)"
  (
    # shellcheck disable=SC1091
    . "$VENV/bin/activate"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export COLCON_HOME="$ROOT/.colcon" COLCON_LOG_PATH="$ROOT/log"
    colcon build --symlink-install --event-handlers console_cohesion- summary+ status- \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python"
  ) || die "colcon build failed; the log is in $ROOT/log/latest_build"
  stamp_set colcon "$want"
}

write_if_changed() {  # write stdin to $1 only when the content differs
  local tmp; tmp=$(mktemp)
  cat > "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

write_env_script() {
  sed "s#@PLD_ROOT@#$ROOT#g" scripts/env.sh.in | write_if_changed env.sh
  # `pld` inside the venv, so that `pld doctor` runs (and says what is missing) even before env.sh.
  sed -e "s#@PLD_ROOT@#$ROOT#g" -e "s#@PYTHON@#$VENV/bin/python#g" scripts/pld_launcher.in |
    write_if_changed "$VENV/bin/pld"
  chmod +x "$VENV/bin/pld"
  step "environment: '. ./env.sh' (activates .venv, sources install/, exports ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST)"
}

START=$SECONDS
install_debian_packages
create_venv
fix_cmake_paths
colcon_build
write_env_script
step "done in $((SECONDS - START)) s"
