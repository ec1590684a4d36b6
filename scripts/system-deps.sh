#!/usr/bin/env bash
# System packages the computer-use harness needs: Chromium and its WebDriver (MiniWoB++ pages), an X server
# without a screen (Xvfb), xdotool (mouse and keys on that display), the desktop's non-browser applications
# (xterm with a shell, nano) and bubblewrap (the episode sandbox).
# Idempotent: installs only what is missing, and only when it can (root with apt-get); otherwise it names
# the packages and exits 0 so the rest of `make` still runs (the computer tests then say what is missing).
set -u

# command on PATH -> Debian package that provides it
declare -A NEED=(
  [chromium]=chromium
  [chromedriver]=chromium-driver
  [Xvfb]=xvfb
  [xdotool]=xdotool
  [xterm]=xterm
  [nano]=nano
  [bwrap]=bubblewrap
)

missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
# xauth lets Xvfb start clients without warnings; fonts make pages render text
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${pkgs}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends ${pkgs} >/dev/null || {
    echo "system-deps: apt-get install failed for: ${pkgs}" >&2
    exit 1
  }
else
  echo "system-deps: missing ${pkgs}- install them (Debian/Ubuntu: sudo apt-get install ${pkgs});" \
       "the computer-use harness needs them" >&2
fi
