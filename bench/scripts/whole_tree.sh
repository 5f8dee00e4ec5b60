#!/bin/bash
# Whole-tree requests on a large session (issue 34): RSS above idle, time to first byte and
# total time of a recursive REST listing, a tar export and a `git clone` of a session imported
# from a generated repository (D directories x F files, default 1000 x 1000 = 1M files), each
# on a freshly started release `aetherd`, next to `git ls-tree -r` and `git archive` of the
# same tree in the same run.
#   bench/scripts/whole_tree.sh AETHERD [D F]
# AETHERD: a release aetherd binary (cargo build --release -p aether-server --bin aetherd).
# Needs git, curl, python3 and GNU time. Work files go to $WORK (default /tmp/aether-whole-tree).
set -euo pipefail
AETHERD=$(realpath "$1"); D=${2:-1000}; F=${3:-1000}
WORK=${WORK:-/tmp/aether-whole-tree}
GEN=$(dirname "$(realpath "$0")")/gen_wide_repo.py
mkdir -p "$WORK"; cd "$WORK"
REPO=$WORK/repo-$D-$F.git
if [ ! -d "$REPO" ]; then
  git init -q --bare "$REPO"
  python3 "$GEN" "$D" "$F" | git --git-dir="$REPO" fast-import --quiet
  git --git-dir="$REPO" symbolic-ref HEAD refs/heads/main
fi
PORT=${PORT:-17071}; API=http://127.0.0.1:$PORT/v1
DATA=$WORK/data-$D-$F
PID=

start() {
  "$AETHERD" --listen 127.0.0.1:$PORT --data-dir "$DATA" --log-level warn \
    --max-import-files 4000000 ${AETHERD_FLAGS:-} >"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.1; done
  TOKEN=$(cat "$DATA/admin.token")
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
kib() { awk -v k="$1:" '$1==k {print $2}' /proc/$PID/status; }

if [ ! -f "$DATA/session" ]; then
  rm -rf "$DATA"; start
  curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' -X POST "$API/sessions" \
    -d "{\"source\":{\"type\":\"git\",\"url\":\"$REPO\"}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' >"$DATA/session"
  stop
fi
S=$(cat "$DATA/session")
echo "session $S: $D x $F files"
printf '%-28s %12s %12s %10s %10s %12s\n' request idle_MiB peak_MiB above_MiB first_s total_s
row() { printf '%-28s %12s %12s %10s %10s %12s\n' "$@"; }

# One request on a fresh server: curl's time to first byte and total, the server's peak RSS
# (VmHWM) minus its RSS when idle just before.
measure() {
  local name=$1; shift
  start
  sleep 1
  local idle; idle=$(kib VmRSS)
  local t; t=$(curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}' \
      -H "Authorization: Bearer $TOKEN" "$@")
  local hwm; hwm=$(kib VmHWM)
  stop
  row "$name" $((idle/1024)) $((hwm/1024)) $(((hwm-idle)/1024)) "$(echo "$t" | cut -d' ' -f2)" "$(echo "$t" | cut -d' ' -f3)"
  echo "    (status, bytes: $(echo "$t" | cut -d' ' -f1,4))" >&2
}

measure "REST ls -r" "$API/sessions/$S/tree?recursive=true"
measure "export tar" "$API/sessions/$S/export?format=tar"

# git clone: the server's peak RSS; the first byte is the first progress line git prints.
start; sleep 1; idle=$(kib VmRSS)
rm -rf "$WORK/clone"
t0=$(date +%s.%N)
git -c credential.helper= clone -q --bare --progress "http://x:$TOKEN@127.0.0.1:$PORT/git/$S" "$WORK/clone" 2>&1 \
  | tr '\r' '\n' | python3 -c '
import sys,time
t0=float(sys.argv[1]); first=None
for line in sys.stdin:
    if first is None and line.strip(): first=time.time()-t0
print("%.3f" % (first or 0), file=open(sys.argv[2],"w"))' "$t0" "$WORK/first"
t1=$(date +%s.%N); hwm=$(kib VmHWM); stop
row "git clone (server)" $((idle/1024)) $((hwm/1024)) $(((hwm-idle)/1024)) "$(cat "$WORK/first")" "$(echo "$t1 - $t0" | bc)"

# git itself, same tree, same run: peak RSS of the git process (GNU time), total time.
for cmd in "ls-tree -r HEAD" "archive --format=tar HEAD"; do
  /usr/bin/time -f '%M %e' -o "$WORK/gtime" git --git-dir="$REPO" $cmd >/dev/null
  read -r m e <"$WORK/gtime"
  row "git $cmd" - $((m/1024)) - - "$e"
done

# git's own floor for a clone: the pack git's server side builds (pack-objects, as upload-pack
# runs it, reusing the repository's pack), and a whole `git clone --no-local` through git's
# upload-pack (peak RSS of the largest process of the clone, upload-pack or index-pack; first
# byte as above, its first progress line).
/usr/bin/time -f '%M %e' -o "$WORK/gtime" sh -c "echo HEAD | git --git-dir='$REPO' pack-objects --revs --stdout -q >/dev/null"
read -r m e <"$WORK/gtime"
row "git pack-objects HEAD" - $((m/1024)) - - "$e"
rm -rf "$WORK/gclone"
t0=$(date +%s.%N)
/usr/bin/time -f '%M %e' -o "$WORK/gtime" git clone -q --bare --no-local --progress "file://$REPO" "$WORK/gclone" 2>&1 \
  | tr '\r' '\n' | python3 -c '
import sys,time
t0=float(sys.argv[1]); first=None
for line in sys.stdin:
    if first is None and line.strip(): first=time.time()-t0
print("%.3f" % (first or 0), file=open(sys.argv[2],"w"))' "$t0" "$WORK/first"
read -r m e <"$WORK/gtime"
row "git clone --no-local" - $((m/1024)) - "$(cat "$WORK/first")" "$e"
