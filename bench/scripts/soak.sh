#!/bin/bash
# Issue 34's admission soak at full scale: the hostile probes of server/tests/http/soak.rs
# (header-only PUTs, idle and stalled uploads, unread downloads, silent and trickling
# connections) multiplied by SCALE (default 6: 600 header-only PUTs, 300 unread 24 MiB
# downloads, 1,804 hostile connections in all) against one in-process server built in
# release, while a side client reads a 1-byte file every 100 ms. Prints the answers the
# hostile connections got, the side client's p50/p99/max, and the process's RSS (server and
# clients together) before the probes and at its peak.
#   bench/scripts/soak.sh [SCALE]
set -e
cd "$(dirname "$0")/../.."
AETHER_SOAK_SCALE=${1:-6} cargo test --release -p aether-server --test http soak -- --nocapture 2>&1 \
  | grep -E '^soak x|^test |panicked'
