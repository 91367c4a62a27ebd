# bench/lib.sh: what the benchmark scripts share. Sourced, not run.

# Fails with a message unless each named variable holds a positive whole number.
require_positive() {
    local var
    for var in "$@"; do
        case ${!var} in '' | *[!0-9]* | 0) echo "$var must be a positive whole number" >&2; exit 2 ;; esac
    done
}

# Installs the Debian packages named, with apt-get (through sudo unless root); nothing when
# none is named. Callers name only the packages whose tools are missing.
apt_install() {
    [ $# -gt 0 ] || return 0
    echo "installing $* with apt-get" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Prints a TCP port that is free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Prints the start of an nginx.conf that runs nginx unprivileged in the foreground with
# every file under DIR, and opens its `http {` block: the caller adds a log_format, an
# access_log, its servers and the closing brace.
nginx_conf_start() { # DIR
    cat <<CONF
daemon off;
master_process off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 256; }
http {
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
CONF
}

# Starts nginx with DIR/nginx.conf in the background (its pid in $nginx_pid) and waits
# until each PORT accepts connections.
nginx_start() { # DIR PORT...
    local dir=$1 p
    shift
    /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
    nginx_pid=$!
    for p in "$@"; do
        for _ in $(seq 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break
            sleep 0.1
        done
    done
}

# Prints the tako binary to measure: $TAKO if set, else the release binary of the checkout
# at ROOT, built first (its target directory may be elsewhere, as cargo metadata says).
release_tako() { # ROOT
    if [ -n "${TAKO:-}" ]; then
        echo "$TAKO"
        return
    fi
    echo "building the release binary" >&2
    (cd "$1" && cargo build --release --locked --quiet --bin tako) >&2
    local target_dir
    target_dir=$(cd "$1" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    echo "${target_dir:-$1/target}/release/tako"
}

# Writes OUT: IN with PERCENT % of its 64 KiB blocks (at least one) rewritten with random
# bytes, at places chosen by SEED.
rewrite_blocks() { # IN OUT PERCENT SEED
    python3 - "$@" <<'PY'
import random, sys
src, out, percent, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
block = 64 << 10
data = bytearray(open(src, "rb").read())
rng = random.Random(seed)
blocks = len(data) // block
for b in rng.sample(range(blocks), min(blocks, max(1, round(blocks * percent / 100)))):
    data[b * block:(b + 1) * block] = rng.randbytes(block)
open(out, "wb").write(data)
PY
}
