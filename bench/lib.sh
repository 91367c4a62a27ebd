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
