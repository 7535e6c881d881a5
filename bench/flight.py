"""Fetching a 10M-row result over Flight SQL against running the same query in process.

The server is the real release binary (`usagelake serve`) on loopback; the client is the Python
ADBC driver, reading the result batch by batch as a notebook would, without keeping it. In
process is the same binary running `EXPLAIN ANALYZE` of the query, which executes it to the last
row and discards the rows: the engine's own time, start-up and lake registration included. The
two take turns, best of 3. Rows and bytes are checked first: the client must see every row.

    bench/run flight     (or: python bench/flight.py --binary B --lake L)
"""

import argparse
import os
import subprocess
import time
import warnings

import adbc_driver_flightsql.dbapi as flightsql

warnings.simplefilter("ignore")

ROWS = 10_000_000
QUERY = f"SELECT ts, user_id, account_id, event, feature, plan, country FROM events LIMIT {ROWS}"


def start_server(binary, lake):
    server = subprocess.Popen(
        [binary, "serve", "--lake", lake, "--addr", "127.0.0.1:0", "--query-timeout", "10m"],
        stderr=subprocess.PIPE,
        text=True,
    )
    first = server.stderr.readline()
    addr = first.split("://", 1)[1].split()[0]
    return server, addr


def fetch_over_flight(addr):
    conn = flightsql.connect(f"grpc://{addr}")
    cur = conn.cursor()
    started = time.perf_counter()
    cur.execute(QUERY)
    rows = nbytes = 0
    for batch in cur.fetch_record_batch():
        rows += batch.num_rows
        nbytes += batch.nbytes
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, rows, nbytes


def run_in_process(binary, lake):
    started = time.perf_counter()
    out = subprocess.run(
        [binary, "--lake", lake, "--format", "csv", "-c", f"EXPLAIN ANALYZE {QUERY}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    elapsed = time.perf_counter() - started
    # The plan's root reports the rows it produced, rounded ("output_rows=10.00 M"): the same
    # 10M the client must see.
    root = out.splitlines()[1]
    assert f"output_rows={ROWS / 1e6:.2f} M" in root, root[:500]
    return elapsed


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    server, addr = start_server(args.binary, args.lake)
    try:
        flight, local = [], []
        for _ in range(3):
            elapsed, rows, nbytes = fetch_over_flight(addr)
            assert rows == ROWS, rows
            flight.append(elapsed)
            local.append(run_in_process(args.binary, args.lake))
        best_flight, best_local = min(flight), min(local)
        mb = nbytes / 1e6
        print(f"\n{ROWS:,} rows, {mb:,.0f} MB of Arrow data ({QUERY})")
        print("| contender | best of 3 | all runs | rows/s | MB/s |")
        print("|---|---:|---|---:|---:|")
        print(
            f"| over Flight SQL (ADBC, Python) | {best_flight:.2f} s | "
            f"{', '.join(f'{t:.2f}' for t in flight)} | {ROWS / best_flight:,.0f} | {mb / best_flight:,.0f} |"
        )
        print(
            f"| in process (`EXPLAIN ANALYZE`) | {best_local:.2f} s | "
            f"{', '.join(f'{t:.2f}' for t in local)} | {ROWS / best_local:,.0f} | {mb / best_local:,.0f} |"
        )
        print(
            f"\nFlight SQL / in process: {best_flight / best_local:.2f} (target <= 1.3); "
            f"server peak RSS {peak_rss_mb(server.pid):,.0f} MB"
        )
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
