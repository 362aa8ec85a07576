#!/usr/bin/env bash
# Ingest + clean throughput and peak memory: iotids vs pandas.read_csv vs
# polars.read_csv on the same generated Edge-IIoTset-schema file, 2 threads,
# in the same run. Numbers go to BENCHMARKS.md.
#
# usage: benches/ingest.sh [SIZE_MB=500] [REPEAT=3]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-500}
repeat=${2:-3}
work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
python3 -m pip install --quiet --disable-pip-version-check -r benches/requirements.txt
cargo build --release --quiet
bin=target/release/iotids

file="$work/synth-${size_mb}mb.csv"
if [ ! -f "$file" ]; then
  # Rows for the wanted size, from the bytes per row of a small sample.
  "$bin" --quiet synth --rows 20000 --out "$work/sample.csv"
  per_row=$(( $(stat -c %s "$work/sample.csv") / 20000 ))
  rows=$(( size_mb * 1000000 / per_row ))
  "$bin" --quiet synth --rows "$rows" --out "$file"
fi
bytes=$(stat -c %s "$file")
echo "file: $file ($bytes bytes)"
export POLARS_MAX_THREADS=2 OMP_NUM_THREADS=2

"$bin" --quiet --threads 2 bench "$file" --repeat "$repeat" --json > "$work/iotids.json"
for tool in pandas polars polars-strings; do
  : > "$work/$tool.jsonl"
  for _ in $(seq "$repeat"); do
    python3 benches/ingest_peer.py "$tool" "$file" >> "$work/$tool.jsonl"
  done
done

python3 - "$work" "$bytes" <<'PY'
import json, statistics, sys
work, size = sys.argv[1], int(sys.argv[2])
ours = json.load(open(f"{work}/iotids.json"))
rows = [("iotids", ours["seconds_median"], ours["peak_rss_bytes"], ours["rows_kept"])]
for tool in ("pandas", "polars", "polars-strings"):
    runs = [json.loads(l) for l in open(f"{work}/{tool}.jsonl")]
    rows.append((tool, statistics.median(r["seconds"] for r in runs),
                 max(r["peak_rss_bytes"] for r in runs), runs[0]["rows_kept"]))
print(f"| tool | seconds (median) | MB/s | peak RSS MB | rows kept |")
print(f"|---|---|---|---|---|")
for name, s, peak, kept in rows:
    print(f"| {name} | {s:.2f} | {size / 1e6 / s:.0f} | {peak / 1e6:.0f} | {kept} |")
for name, s, peak, _ in rows[1:]:
    print(f"iotids vs {name}: {s / rows[0][1]:.2f}x the speed, {peak / rows[0][2]:.1f}x less peak memory")
PY
