#!/usr/bin/env bash
# guard.sh: the CI regression guard. A short decrypt.sh run (16 MiB, 3
# runs, zlib and uncompressed) measures im1's decrypt+validate+land path
# against `gpg --decrypt` on this machine, and fails when a throughput ratio
# fell below half of the committed baseline (bench/baseline.json). Ratios,
# not times, so a slower or busier machine does not trip it; only a large
# regression of im1 against gpg does. --update rewrites the baseline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$here/decrypt.sh" --size 16 --runs 3 --rss-sizes 16 --json "$out" >/dev/null
if [ "${1:-}" = --update ]; then
	cp "$out" "$here/baseline.json"
	echo "baseline updated:"; cat "$here/baseline.json"
	exit 0
fi
python3 - "$here/baseline.json" "$out" <<'PY'
import json, sys
base, now = (json.load(open(p)) for p in sys.argv[1:3])
failed = False
for mode in ("zlib", "none"):
    b, n = base[mode]["ratio"], now[mode]["ratio"]
    ok = n >= 0.5 * b
    failed |= not ok
    print(f"bench guard {mode}: im1/gpg throughput ratio {n:.2f} (baseline {b:.2f}, floor {0.5*b:.2f}) {'ok' if ok else 'REGRESSION'}")
sys.exit(1 if failed else 0)
PY
