#!/bin/bash
# POSIX conformance of the mount: the C suite pjd/pjdfstest, run as root from the root of a
# mount of a fresh session (`--allow-other`: the suite switches to other users), and the same
# run in a directory of the host's own file system as the reference.
#
#   bench/scripts/pjdfstest.sh PJDFSTEST_DIR [WORK_DIR]
#
# PJDFSTEST_DIR is a checkout of pjd/pjdfstest built with
# `autoreconf -ifs && ./configure && make pjdfstest`. Uses `aetherd` and `aether` from
# target/debug (build them first: cargo build -p aether-server -p aether-cli). Prints each
# run's summary and writes the full `prove` output to WORK_DIR/{mount,reference}.txt.
# PJD_SKIP_REFERENCE=1 runs the mount only.
set -euo pipefail
suite=$(cd "${1:?usage: pjdfstest.sh PJDFSTEST_DIR [WORK_DIR]}" && pwd)
work=${2:-/tmp/pjd-work}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${AETHER_BIN_DIR:-$root/target/debug}
port=${PJD_PORT:-7171}
[ "$(id -u)" = 0 ] || { echo "pjdfstest runs as root (it switches users)" >&2; exit 2; }
[ -x "$suite/pjdfstest" ] || { echo "$suite/pjdfstest is not built" >&2; exit 2; }

rm -rf "$work" && mkdir -p "$work/mnt" "$work/ref"
export AETHER_URL=http://127.0.0.1:$port AETHER_DATA_DIR=$work/data
"$bin/aetherd" --listen 127.0.0.1:$port --data-dir "$work/data" >"$work/aetherd.log" 2>&1 &
server=$!
cleanup() {
    "$bin/aether" unmount "$work/mnt" >/dev/null 2>&1 || fusermount3 -u "$work/mnt" 2>/dev/null || true
    kill "$server" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$work/data/admin.token" ] && break; sleep 0.1; done
export AETHER_TOKEN=$(cat "$work/data/admin.token")
session=$("$bin/aether" session create --json | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
"$bin/aether" mount "$session" "$work/mnt" --allow-other --log-file "$work/mount.log"

run() { # DIR OUT
    (cd "$1" && prove -r "$suite/tests" >"$2" 2>&1) || true
    local total failed
    total=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$2")
    failed=$(sed -n 's/.*Failed: \([0-9]*\))$/\1/p' "$2" | paste -sd+ | bc)
    echo "$1: ${failed:-0} of $total subtests failing"
}
run "$work/mnt" "$work/mount.txt"
[ "${PJD_SKIP_REFERENCE:-0}" = 1 ] || run "$work/ref" "$work/reference.txt"
