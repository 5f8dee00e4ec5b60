#!/bin/bash
# Handoff between two mounts of one session: mount B has read a file (the kernel caches it);
# mount A rewrites and closes it; how often is B's first read right after stale, and how long
# until B serves the new bytes? 40 rounds. Then what it costs A: the time of A's
# open-write-close, and of creating 500 small files, with B attached and after B is unmounted.
# Needs root (FUSE) and release binaries:
#   cargo build --release -p aether-server -p aether-cli && bench/scripts/handoff_two_mounts.sh
set -e
B=${AETHER_BIN_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
W=${1:-/tmp/handoff-two-mounts}; rm -rf $W; mkdir -p $W/a $W/b
$B/aetherd --listen 127.0.0.1:7373 --data-dir $W/data > $W/log 2>&1 &
srv=$!
trap 'umount $W/a 2>/dev/null || true; umount $W/b 2>/dev/null || true; kill $srv' EXIT
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
lat = []; stale_at_once = 0; close_ms = []
for i in range(1, 41):
    want = f"version {i:04d}"
    t = time.perf_counter()
    with open(a, "w") as f: f.write(want)          # closed here
    close_ms.append((time.perf_counter() - t) * 1000)
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
print(f"with B attached: A's open-write-close median {statistics.median(close_ms):.2f} ms")
PY
cost() {
python3 - "$W" "$1" <<'PY'
import os, sys, time, statistics
w, label = sys.argv[1], sys.argv[2]
close_ms = []
for i in range(40):
    t = time.perf_counter()
    with open(f"{w}/a/f.txt", "w") as f: f.write(f"cost {i}")
    close_ms.append((time.perf_counter() - t) * 1000)
    time.sleep(0.02)
d = f"{w}/a/many-{label.replace(' ', '-')}"; os.mkdir(d)
t = time.perf_counter()
for i in range(500):
    with open(f"{d}/{i}", "w") as f: f.write("x" * 100)
many = time.perf_counter() - t
print(f"{label}: A's open-write-close median {statistics.median(close_ms):.2f} ms; 500 new files {many*1000:.0f} ms")
PY
}
cost "B attached"
umount $W/b; sleep 1
cost "A alone"

