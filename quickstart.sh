#!/bin/sh
# Quick start: a whole publish-and-update cycle on this machine, in a
# temporary directory. Needs only the Rust toolchain and a POSIX shell.
set -eu
cd "$(dirname "$0")"

echo "== building tako and a small static file server"
echo "   (a release build: the first one takes a few minutes; cargo shows its progress below)"
cargo build --release --bin tako --example serve
tako="$PWD/target/release/tako"
serve="$PWD/target/release/examples/serve"

work=$(mktemp -d)
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
cd "$work"
mkdir origin host

echo "== publisher: make a key pair"
"$tako" gen-key > key.txt
TAKO_SECRET_KEY=$(sed -n 2p key.txt)
export TAKO_SECRET_KEY
public=$(sed -n 5p key.txt)
echo "public key: $public"

echo "== publisher: store versions 1.0.0 and 1.1.0"
echo "app image, version 1.0.0" > app-1.0.0.img
echo "app image, version 1.1.0" > app-1.1.0.img
"$tako" store -o origin app-1.0.0.img 1.0.0
"$tako" store -o origin app-1.1.0.img 1.1.0
cat origin/manifest

echo "== publisher: serve the directory on 127.0.0.1"
"$serve" origin 127.0.0.1:0 > server.out &
server=$!
url=""
for _ in $(seq 50); do
    url=$(head -n 1 server.out)
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start" >&2; exit 1; }
echo "origin: $url"

echo "== host: configure and fetch"
cat > app.tako <<CONFIG
Origin=$url
PublicKey=$public
Destination=$work/host
Version=1.*
CONFIG
cat app.tako
"$tako" fetch app.tako
echo "latest -> $(readlink host/latest): $(cat host/latest)"
"$tako" fetch app.tako

echo "== publisher: store version 1.2.0; host: fetch again"
echo "app image, version 1.2.0" > app-1.2.0.img
"$tako" store -o origin app-1.2.0.img 1.2.0
"$tako" fetch app.tako
echo "latest -> $(readlink host/latest): $(cat host/latest)"
ls -l host/store
echo "== done: the host moved from 1.1.0 to 1.2.0 and kept the old image"
