#!/bin/bash
# Handoff between two mounts of one session: mount B has read a file (the kernel caches it);
# mount A rewrites and closes it; how often is B's first read right after stale, and how long
# until B serves the new bytes? 40 rounds. Needs root (FUSE) and release binaries:
#   cargo build --release -p aether-server -p aether-cli && bench/scripts/handoff_two_mounts.sh
set -e
B=${AETHER_BIN_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
W=${1:-/tmp/handoff-two-mounts}; rm -rf $W; mkdir -p $W/a $W/b
$B/aetherd --listen 127.0.0.1:7373 --data-dir $W/data > $W/log 2>&1 &
srv=$!
trap 'umount $W/a 2>/dev/null; umount $W/b 2>/dev/null; kill $srv' EXIT
sleep 1
export AETHER_URL=http://127.0.0.1:7373 AETHER_TOKEN=$(cat $W/data/admin.token)
S=$($B/aether session create --json | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' | head -1)
$B/aether mount $S $W/a >/dev/null; $B/aether mount $S $W/b >/dev/null
python3 - "$W" <<'PY'
import os, sys, time, statistics
w = sys.argv[1]
a, b = f"{w}/a/f.txt", f"{w}/b/f.txt"
open(a, "w").write("v0")
t0 = time.time()
while True:
    try:
        if open(b).read() == "v0": break
    except FileNotFoundError: pass
    time.sleep(0.001)
lat = []; stale_at_once = 0
for i in range(1, 41):
    want = f"version {i:04d}"
    with open(a, "w") as f: f.write(want)          # closed here
    t = time.perf_counter()
    first = open(b).read()
    if first != want: stale_at_once += 1
    while open(b).read() != want:
        time.sleep(0.0005)
        if time.perf_counter() - t > 5: raise SystemExit(f"round {i}: never seen")
    lat.append((time.perf_counter() - t) * 1000)
    time.sleep(0.05)
lat.sort()
print(f"rounds 40; B's first read after A's close was stale in {stale_at_once}; "
      f"time until B served the new bytes: median {statistics.median(lat):.1f} ms, "
      f"p90 {lat[int(0.9*len(lat))-1]:.1f} ms, max {lat[-1]:.1f} ms")
PY
