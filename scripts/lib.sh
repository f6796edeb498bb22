# Shared helpers for lora4j's scripts (sourced, never run): messages and Debian package installs.
say() { printf '\033[1m[lora4j]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[lora4j] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Installs the Debian packages that are missing (as root, or through sudo).
lora4j_apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo
  sudo=$(lora4j_sudo "to install: ${missing[*]}")
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Makes sure apt's package lists are there: `apt-cache dumpavail` (the text examples' data) reads
# them, and a fresh machine or container may have none. Runs apt-get update (as root, or through sudo) if so.
lora4j_apt_lists() {
  local n
  n=$(apt-cache dumpavail 2>/dev/null | grep -c '^Package:' || true)
  [ "${n:-0}" -gt 0 ] && return 0
  say "apt's package lists are empty: running apt-get update"
  local sudo
  sudo=$(lora4j_sudo "to run apt-get update (apt-cache dumpavail lists no package)")
  $sudo apt-get update -qq
}

# Prints what to put before a command that needs root: nothing as root, "sudo" otherwise; stops
# with "need root (or sudo) WHY" when there is no sudo.
lora4j_sudo() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null || die "need root (or sudo) $1"
  echo sudo
}

# Waits until the HTTP service (process $1, log $2) answers on 127.0.0.1:$3/health, for at most $4 s.
lora4j_wait_for_service() {
  local pid=$1 log=$2 port=$3 seconds=$4
  for _ in $(seq 1 "$seconds"); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || die "the service exited: $(cat "$log")"
    sleep 1
  done
  die "the service did not come up in $seconds s (see $log)"
}
