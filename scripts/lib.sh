# Shared helpers for the setup and test scripts. Source it; it defines functions only.

# Installs Debian packages that are missing, running apt-get update once.
ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "${APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Installs the interpreters the local executor runs, and Redis.
ensure_runtime() {
  local packages=()
  command -v redis-server >/dev/null || packages+=(redis-server)
  command -v redis-cli >/dev/null || packages+=(redis-tools)
  command -v python3 >/dev/null || packages+=(python3)
  command -v node >/dev/null || packages+=(nodejs)
  # Crates with C parts (ring) need a C compiler and the C library headers.
  command -v cc >/dev/null || packages+=(gcc libc6-dev)
  [ ${#packages[@]} -eq 0 ] || ensure_packages "${packages[@]}"
  if ! command -v cargo >/dev/null; then
    echo "error: cargo (Rust 1.88 or newer) is required; install it with rustup and run this again" >&2
    exit 1
  fi
}

# Starts a Redis server on 127.0.0.1:6379 unless one responds there, or unless
# REDIS_URL names another server, which is then the operator's to run. It
# keeps an append-only file, so queued runs survive a restart of Redis.
ensure_redis() {
  case "${REDIS_URL:-redis://127.0.0.1:6379}" in
    redis://127.0.0.1:6379 | redis://127.0.0.1:6379/ | redis://localhost:6379 | redis://localhost:6379/) ;;
    *)
      echo "==> using the Redis server at REDIS_URL; not starting one"
      return 0
      ;;
  esac
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    return 0
  fi
  local dir="${XDG_STATE_HOME:-$HOME/.local/state}/code-runner/redis"
  echo "==> starting redis-server on 127.0.0.1:6379 (data in $dir)"
  mkdir -p "$dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly yes \
    --dir "$dir" --logfile "$dir/redis.log"
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "error: redis-server did not start; see $dir/redis.log" >&2
  exit 1
}
