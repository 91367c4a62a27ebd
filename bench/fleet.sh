#!/usr/bin/env bash
# A fleet simulated on this machine: HOSTS hosts (each its own destination) against one
# nginx on 127.0.0.1, run in waves of WAVE at a time.
#
#   bench/fleet.sh                          # 100 hosts, a 64 MiB image, 5 % changed
#   HOSTS=300 WAVE=20 bench/fleet.sh        # a larger fleet
#   SIZE_MIB=16 HOSTS=10 POLLS=1 bench/fleet.sh   # a quick smoke run
#   TAKO=/path/to/tako bench/fleet.sh       # another tako binary
#
# Phases, each over every host:
#
#   poll     POLLS rounds of `tako fetch` when nothing changed: conditional requests, 304
#   delta    release 2.0 (CHANGE_PCT % of its 64 KiB blocks rewritten) as a delta update
#   full     the same release downloaded whole into an empty destination (removed after)
#
# Every host first holds 1.0 (installed once, then hard-linked into each destination; not
# counted). Origin bytes and requests come from nginx's access log ($bytes_sent: status
# line, headers and body), nginx's CPU from /proc/<pid>/stat (utime + stime; nginx runs as
# one process), each host's wall time from the shell's clock around its `tako fetch`. The
# table ends with an extrapolation to 10,000 hosts polling every 5 minutes with a weekly
# 1 GiB release, scaled from the bytes per host measured here. Needs nginx (nginx-light),
# python3 and cargo; installs nginx with apt-get if missing. Everything lives in
# bench/work/fleet (git-ignored); the table is bench/work/fleet-results.md.
set -euo pipefail

HOSTS=${HOSTS:-100}
WAVE=${WAVE:-10}
SIZE_MIB=${SIZE_MIB:-64}
CHANGE_PCT=${CHANGE_PCT:-5}
POLLS=${POLLS:-3}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
require_positive HOSTS WAVE SIZE_MIB POLLS
case $CHANGE_PCT in '' | *[!0-9]*) echo "CHANGE_PCT must be a whole number" >&2; exit 2 ;; esac
work=$root/bench/work/fleet
cd "$root"

missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
apt_install "${missing[@]}"
TAKO=$(release_tako "$root")

rm -rf "$work"
mkdir -p "$work/origin" "$work/hosts" "$work/nginx"
key=$(tr -d '\n' < tests/vectors/test-key.secret)
public=$(cat tests/vectors/test-key.public)

echo "making a $SIZE_MIB MiB image and 2.0 with $CHANGE_PCT % of its 64 KiB blocks rewritten" >&2
head -c $((SIZE_MIB << 20)) /dev/urandom > "$work/v1"
rewrite_blocks "$work/v1" "$work/v2" "$CHANGE_PCT" 1
"$TAKO" store -k "$key" -o "$work/origin" "$work/v1" 1.0 >/dev/null

port=$(free_port)
{
    nginx_conf_start "$work/nginx"
    cat <<CONF
    log_format fleet "\$request_uri \$status \$bytes_sent";
    access_log $work/nginx/access.log fleet;
    server {
        listen 127.0.0.1:$port;
        root $work/origin;
    }
}
CONF
} > "$work/nginx/nginx.conf"
nginx_start "$work/nginx" "$port"
trap 'kill $nginx_pid 2>/dev/null || true' EXIT

config_for() { # DEST
    printf 'Origin=http://127.0.0.1:%s\nPublicKey=%s\nDestination=%s\nVersion=*\n' \
        "$port" "$public" "$1"
}

# Host 1 installs 1.0 through nginx; the others get hard links of its destination (store
# files are read-only and replaced by rename, never written in place).
mkdir -p "$work/hosts/1/dest"
config_for "$work/hosts/1/dest" > "$work/hosts/1/app.tako"
"$TAKO" fetch -q "$work/hosts/1/app.tako"
for i in $(seq 2 "$HOSTS"); do
    mkdir -p "$work/hosts/$i"
    cp -al "$work/hosts/1/dest" "$work/hosts/$i/dest"
    config_for "$work/hosts/$i/dest" > "$work/hosts/$i/app.tako"
done
for i in $(seq 1 "$HOSTS"); do
    config_for "$work/hosts/$i/full" > "$work/hosts/$i/full.tako"
done

ticks=$(getconf CLK_TCK)
nginx_cpu() { awk '{ print $14 + $15 }' "/proc/$nginx_pid/stat"; }
log_lines() { wc -l < "$work/nginx/access.log"; }

# One host's fetch, its wall time in ms appended to TIMES.
one_host() { # I CONFIG TIMES [full]
    local start end
    mkdir -p "$work/hosts/$1/full"
    start=$(date +%s%N)
    "$TAKO" fetch -q "$work/hosts/$1/$2" >/dev/null
    end=$(date +%s%N)
    echo $(((end - start) / 1000000)) >> "$3"
    if [ "${4:-}" = full ]; then rm -rf "$work/hosts/$1/full"; fi
}

# Runs every host in waves of WAVE, then prints a result row for PHASE.
phase() { # PHASE CONFIG ROUNDS [full]
    local name=$1 config=$2 rounds=$3 mode=${4:-} times="$work/times-$1" from cpu0 cpu1 i r
    : > "$times"
    from=$(log_lines)
    cpu0=$(nginx_cpu)
    # `wait` names the hosts' jobs: nginx is a job of this shell too.
    local pids=()
    for r in $(seq 1 "$rounds"); do
        for i in $(seq 1 "$HOSTS"); do
            one_host "$i" "$config" "$times" "$mode" &
            pids+=($!)
            if [ ${#pids[@]} -eq "$WAVE" ] || [ "$i" -eq "$HOSTS" ]; then
                wait "${pids[@]}"
                pids=()
            fi
        done
    done
    sleep 0.2 # nginx writes its log line after the response
    cpu1=$(nginx_cpu)
    tail -n +"$((from + 1))" "$work/nginx/access.log" > "$work/log-$name"
    sort -n "$times" > "$times.sorted"
    awk -v name="$name" -v hosts="$HOSTS" -v rounds="$rounds" -v cpu=$((cpu1 - cpu0)) \
        -v ticks="$ticks" -v times="$times.sorted" '
        { n++; bytes += $3; status[$2]++ }
        END {
            while ((getline t < times) > 0) w[m++] = t
            s = ""; for (k in status) s = s k "x" status[k] " "
            per = hosts * rounds
            printf "| %s | %d | %s| %d | %.1f | %.0f | %.0f | %.2f | %d | %d | %d |\n", name, per, s, n, n / per,
                bytes, bytes / per, cpu / ticks, w[int(m / 2)], w[int(m * 0.95)], w[m - 1]
            printf "%s %.0f\n", name, bytes / per > "/dev/stderr"
        }' "$work/log-$name" 2>> "$work/per-host"
}

results=$work/../fleet-results.md
: > "$work/per-host"
{
    echo "$HOSTS hosts in waves of $WAVE, a $SIZE_MIB MiB image, $CHANGE_PCT % of 64 KiB blocks rewritten, $POLLS poll rounds"
    echo
    echo "| phase | host runs | statuses | requests | requests per host | origin bytes | bytes per host | nginx CPU (s) | host wall median (ms) | p95 (ms) | max (ms) |"
    echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
} > "$results"
echo "polling: $HOSTS hosts x $POLLS rounds" >&2
phase poll app.tako "$POLLS" >> "$results"
"$TAKO" store -k "$key" -o "$work/origin" "$work/v2" 2.0 >/dev/null
echo "updating to 2.0 as a delta" >&2
phase delta app.tako 1 >> "$results"
echo "downloading 2.0 whole" >&2
phase full full.tako 1 full >> "$results"
digest=$(sha256sum "$work/v2" | cut -d ' ' -f 1)
for i in $(seq 1 "$HOSTS"); do
    [ "$(readlink "$work/hosts/$i/dest/latest")" = "store/$digest" ] \
        || [ "$(basename "$(readlink "$work/hosts/$i/dest/latest")")" = "$digest" ] \
        || { echo "host $i does not hold 2.0" >&2; exit 1; }
done

awk -v size="$SIZE_MIB" '
    { b[$1] = $2 }
    END {
        hosts = 10000; polls = 288; scale = 1024 / size
        poll = hosts * polls * b["poll"]
        delta = hosts * b["delta"] * scale
        full = hosts * b["full"] * scale
        printf "\nExtrapolated to %d hosts polling every 5 minutes, a 1 GiB release each week:\n\n", hosts
        print "| | per release | per day (polls + release / 7) |"
        print "|---|---:|---:|"
        printf "| delta | %.1f GB | %.1f GB |\n", delta / 1e9, (poll + delta / 7) / 1e9
        printf "| full download | %.1f GB | %.1f GB |\n", full / 1e9, (poll + full / 7) / 1e9
        printf "| polls alone | | %.2f GB (%d polls of %.0f bytes) |\n", poll / 1e9, hosts * polls, b["poll"]
    }' "$work/per-host" >> "$results"
cat "$results"
