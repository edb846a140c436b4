#!/usr/bin/env bash
# Fetch Consul 1.8.7 (MPL-2.0) from Debian bullseye into .cache/consul/ of this repository,
# without touching the system's apt configuration: a private sources list names the bullseye
# suite on the mirror the system already uses, and apt-get reads only that list.
# Idempotent: a second run finds the binary and exits at once.
# Prints the binary's path on stdout; everything else goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${HETEROFLOW_CONSUL_CACHE:-$ROOT/.cache/consul}"
BIN="$DIR/usr/bin/consul"
WANT="1.8.7"

# No early-closing pipes (grep -q, head) on consul's output: with pipefail a SIGPIPE in
# consul would fail the script now and then.
installed_version() { [[ -x "$BIN" ]] && "$BIN" version 2>/dev/null || true; }

if [[ "$(installed_version)" == *"Consul v$WANT"* ]]; then
  echo "$BIN"
  exit 0
fi

mirror() {
  # The first deb URI of the system's own Debian sources (deb822 or one-line format).
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    uri="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
  fi
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

command -v apt-get >/dev/null || { echo "install-consul: needs apt-get (Debian)" >&2; exit 1; }
command -v dpkg >/dev/null || { echo "install-consul: needs dpkg (Debian)" >&2; exit 1; }

mkdir -p "$DIR/lists/partial" "$DIR/archives/partial"
echo "deb $(mirror) bullseye main" > "$DIR/sources.list"
APT_OPTS=(
  -o "Dir::State::Lists=$DIR/lists"
  -o "Dir::Etc::SourceList=$DIR/sources.list"
  -o "Dir::Etc::SourceParts=/nonexistent"
  -o "Dir::Cache::Archives=$DIR/archives"
  -o "Debug::NoLocking=1"
)
echo "install-consul: reading the bullseye package list from $(mirror)" >&2
apt-get "${APT_OPTS[@]}" -qq update >&2
(cd "$DIR" && apt-get "${APT_OPTS[@]}" -qq download "consul=$WANT*" >&2)
DEB="$(ls "$DIR"/consul_"$WANT"*.deb | head -n1)"
dpkg -x "$DEB" "$DIR"
rm -f "$DEB"
rm -rf "$DIR/lists"
version="$(installed_version)"
[[ "$version" == *"Consul v$WANT"* ]] || { echo "install-consul: $BIN is not Consul $WANT" >&2; exit 1; }
echo "${version%%$'\n'*}" >&2
echo "$BIN"
