#!/usr/bin/env python3
"""A git fast-import stream of one commit holding D directories of F small distinct files
(`dDDDD/fFFFFF.txt`): bench/scripts/whole_tree.sh's large session."""
import sys

D, F = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
mark = 0
for d in range(D):
    for f in range(F):
        mark += 1
        data = b"file %d/%d\n" % (d, f)
        out.write(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
out.write(b"commit refs/heads/main\ncommitter Bench <bench@localhost> 1700000000 +0000\ndata 6\nbench\n")
mark = 0
for d in range(D):
    for f in range(F):
        mark += 1
        out.write(b"M 100644 :%d d%04d/f%05d.txt\n" % (mark, d, f))
out.write(b"\n")
