# Shared by scripts/bootstrap and scripts/bootstrap-kubernetes (sourced): progress lines, logged
# steps and Debian packages. The sourcing script sets `tag`, `started` and `cache` first.

step() { printf '[%s +%4ss] %s\n' "$tag" "$(($(date +%s) - started))" "$*"; }
fail() { printf '[%s] error: %s\n' "$tag" "$*" >&2; exit 1; }
# Run a long command with its output in a log file; show the log's tail if it fails.
logged() {
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "'$*' failed; full log: $log"
  fi
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ ! -f "$cache/.apt-updated" ]; then as_root apt-get update -qq && touch "$cache/.apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}
