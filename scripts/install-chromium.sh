#!/usr/bin/env bash
# Debian's Chromium for the browser tests: Playwright drives it by path and never downloads
# a browser of its own (no browser download is reachable from CI or from a user's sandbox).
# Idempotent: a second run finds the binary and exits at once.
# Prints the binary's path on stdout; everything else goes to stderr.
set -euo pipefail

BIN="${HETEROFLOW_CHROMIUM:-/usr/bin/chromium}"
if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

command -v apt-get >/dev/null || { echo "install-chromium: needs apt-get (Debian)" >&2; exit 1; }
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  command -v sudo >/dev/null || { echo "install-chromium: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi
# The package lists may be missing on a fresh machine; one update, then the install.
$SUDO apt-get install -y -q chromium >&2 || {
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >&2
}
echo "$BIN"
