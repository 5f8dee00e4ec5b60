#!/usr/bin/env bash
# A Linux 6.1 checkout stays a clean git checkout across mounts (issue 32): Debian's
# linux-source-6.1 committed with git and packed, imported with `aether session create
# --from-dir`; `git status` and `git diff --quiet` on a cold mount (empty cache, page cache
# dropped), a remount with a warm cache and a fork's mount must show a clean tree, and
# `git fsck --full` must pass in the mount. Needs root (drop_caches, FUSE), git, bc and
# `apt-get install linux-source-6.1`; takes a few minutes and ~4 GB in WORK.
#
# usage: tests/scale/linux-checkout-across-mounts.sh [WORK] (default /tmp/aether-linux-checkout)
# Uses the release binaries: cargo build --release -p aether-server -p aether-cli
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
B=$top/target/release
W=${1:-/tmp/aether-linux-checkout}
mkdir -p "$W"
src=$W/linux-source-6.1
if [ ! -d "$src/.git" ]; then
    rm -rf "$src"
    tar xJf /usr/src/linux-source-6.1.tar.xz -C "$W"
    # Debian's packaging adds "ignore everything at the top level" to the kernel's .gitignore.
    python3 - "$src/.gitignore" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
i = s.find("#\n# Debian packaging")
open(p, "w").write(s if i < 0 else s[:i])
PY
    (cd "$src" && git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm "linux 6.1" && git gc -q)
fi
for m in m1 m2 m3; do fusermount3 -uz "$W/$m" 2>/dev/null; done
rm -rf "$W/data" "$W/cache" "$W/home"; mkdir -p "$W/home" "$W/m1" "$W/m2" "$W/m3"
export HOME=$W/home
"$B/aetherd" --data-dir "$W/data" --listen 127.0.0.1:7171 > "$W/aetherd.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
sleep 1
export AETHER_URL=http://127.0.0.1:7171 AETHER_TOKEN=$(cat "$W/data/admin.token")
failed=0
t() { local s; s=$(date +%s.%N); "$@"; local rc=$?; echo "[$(echo "$(date +%s.%N) - $s" | bc | xargs printf '%.2f') s, exit $rc] $*" >&2; return $rc; }
id_of() { python3 -c 'import sys,json; print(json.load(sys.stdin)["id"])'; }
check() { # DIR LABEL
    sync; echo 3 > /proc/sys/vm/drop_caches
    (cd "$1" && t git status --porcelain > "$W/status-$2.txt")
    echo "$2: git status: $(wc -l < "$W/status-$2.txt") lines"
    [ -s "$W/status-$2.txt" ] && { head -5 "$W/status-$2.txt"; failed=1; }
    (cd "$1" && t git diff --quiet) || { echo "$2: git diff finds changes"; failed=1; }
}
S=$(t "$B/aether" session create --from-dir "$src" --json | id_of)
t "$B/aether" mount "$S" "$W/m1" --cache-dir "$W/cache" --log-file "$W/mount1.log"
check "$W/m1" cold
(cd "$W/m1" && t git fsck --full > "$W/fsck.txt" 2>&1) || { echo "git fsck --full failed"; failed=1; }
t "$B/aether" unmount "$W/m1" || failed=1
t "$B/aether" mount "$S" "$W/m2" --cache-dir "$W/cache" --log-file "$W/mount2.log"
check "$W/m2" warm
t "$B/aether" unmount "$W/m2" || failed=1
F=$("$B/aether" session fork "$S" --json | id_of)
t "$B/aether" mount "$F" "$W/m3" --cache-dir "$W/cache" --log-file "$W/mount3.log"
check "$W/m3" fork
t "$B/aether" unmount "$W/m3" || failed=1
"$B/aether" cache stats --cache-dir "$W/cache"
if grep -q ERROR "$W"/mount*.log; then echo "the mounts logged errors"; failed=1; fi
[ $failed = 0 ] && echo "clean on every mount" || echo "NOT clean"
exit $failed
