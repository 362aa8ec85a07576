#!/usr/bin/env python3
"""One timed ingest + clean run of a Python peer, for benches/ingest.sh.

usage: ingest_peer.py pandas|polars|polars-strings FILE
Reads FILE, removes exact duplicate rows, and prints one JSON line: seconds, rows
kept, peak RSS of this process. `pandas` and `polars` infer column types (polars
over the whole file: with its default 100-row sample it fails on the hex and
shifted values of Edge-IIoTset files); `polars-strings` reads every column as
text, no type conversion at all: polars' fastest possible read, less work than
iotids does.
Run it in a fresh process per repetition so peak memory is the run's own.
"""
import json
import resource
import sys
import time

tool, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if tool == "pandas":
    import pandas as pd

    df = pd.read_csv(path, low_memory=False)
    df = df.drop_duplicates()
    rows = len(df)
elif tool == "polars":
    import polars as pl

    # Edge-IIoTset files mix numbers and text in one column (shifted rows): let
    # polars scan the whole file for types instead of failing on a late string.
    df = pl.read_csv(path, infer_schema_length=None)
    df = df.unique(maintain_order=True)
    rows = df.height
elif tool == "polars-strings":
    import polars as pl

    df = pl.read_csv(path, infer_schema=False)
    df = df.unique(maintain_order=True)
    rows = df.height
else:
    sys.exit(f"unknown tool {tool}")
secs = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"tool": tool, "seconds": secs, "rows_kept": rows, "peak_rss_bytes": peak}))
