"""Fetching a 10M-row result over Flight SQL against delivering the same result in process.

The server is the real release binary (`usagelake serve`) on loopback. Over Flight SQL, two
clients read the result batch by batch without keeping it: the Python ADBC driver, as a notebook
would, and arrow-flight's own Rust client (bench/fetch, `fetch-bench flight`), which leaves out
the Go driver and pyarrow's import of each batch.

In process is what the comparison must be fair to: the same rows handed to a consumer as Arrow
batches, in the same types. `fetch-bench local` runs the query the way the server does (a session
made as `usagelake serve` makes it, reading strings as classic `Utf8`, and the server's own
`Connection::execute`) and hands each batch to a consumer that drops it; `--ipc` also writes the
batches as an Arrow IPC stream to a sink, the encoding any process boundary costs. `EXPLAIN
ANALYZE` of the query by the binary, the reference of the first measurement, only executes the
plan: its root's batches reach no consumer, its strings stay `Utf8View`, which skips copying
every string out of Parquet's dictionaries, and it counts start-up and lake registration; it is
kept as a reference only. Every time but `EXPLAIN ANALYZE`'s runs from the query's start to its
last batch. The contenders take turns, best of 3; every one must see all the rows. Beside the
times, the CPU each run cost the server and the client (for in process, the one process, its
start-up included), the least of 3: on a 2-core machine their sum bounds how fast a fetch can be.

    bench/run flight
    (or: python bench/flight.py --binary B --fetch-bench F --lake L, F built by
     cargo build --release --manifest-path bench/fetch/Cargo.toml)
"""

import argparse
import os
import resource
import socket
import subprocess
import sys
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


def fetch_with_adbc(addr):
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
    assert rows == ROWS, rows
    return elapsed, nbytes


def fetch_bench(fetch, *args):
    """Runs bench/fetch: it prints the rows it saw and the seconds they took."""
    out = subprocess.run([fetch, *args], check=True, capture_output=True, text=True).stdout
    rows, seconds = out.split()
    assert int(rows) == ROWS, out
    return float(seconds)


# The reading end of `through_loopback`: connects, reads the given number of bytes into one
# buffer, and answers one byte when it has them all.
LOOPBACK_READER = """
import socket, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
conn = socket.create_connection(("127.0.0.1", port))
buffer = memoryview(bytearray(1 << 20))
left = size
while left:
    got = conn.recv_into(buffer, min(len(buffer), left))
    assert got, "the sender closed early"
    left -= got
conn.sendall(b"x")
"""


def through_loopback(size):
    """Moves `size` bytes through a loopback TCP connection to another process, 1 MiB per send:
    the wire alone, without Arrow, gRPC or a query, which no fetch of that many bytes between two
    processes on this machine can beat."""
    listener = socket.create_server(("127.0.0.1", 0))
    reader = subprocess.Popen(
        [sys.executable, "-c", LOOPBACK_READER, str(listener.getsockname()[1]), str(size)]
    )
    conn, _ = listener.accept()
    chunk = memoryview(bytes(1 << 20))
    started = time.perf_counter()
    left = size
    while left:
        sent = conn.send(chunk[: min(len(chunk), left)])
        left -= sent
    assert conn.recv(1) == b"x"
    elapsed = time.perf_counter() - started
    conn.close()
    listener.close()
    reader.wait()
    return elapsed


def explain_analyze(binary, lake):
    started = time.perf_counter()
    out = subprocess.run(
        [binary, "--lake", lake, "--format", "csv", "-c", f"EXPLAIN ANALYZE {QUERY}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    elapsed = time.perf_counter() - started
    # The plan's root reports the rows it produced, rounded ("output_rows=10.00 M").
    root = out.splitlines()[1]
    assert f"output_rows={ROWS / 1e6:.2f} M" in root, root[:500]
    return elapsed


def cpu_seconds(pid):
    """User and system CPU a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_and_children_cpu():
    """CPU this script and the children it waited for have used so far."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--fetch-bench", required=True, help="bench/fetch's release binary")
    parser.add_argument("--lake", required=True)
    args = parser.parse_args()
    server, addr = start_server(args.binary, args.lake)
    contenders = {
        "over Flight SQL (ADBC, Python)": None,
        "over Flight SQL (arrow-flight, Rust)": lambda: fetch_bench(
            args.fetch_bench, "flight", f"grpc://{addr}", QUERY
        ),
        "in process, batches to a consumer": lambda: fetch_bench(
            args.fetch_bench, "local", args.lake, QUERY
        ),
        "in process, batches written as Arrow IPC": lambda: fetch_bench(
            args.fetch_bench, "local", args.lake, QUERY, "--ipc"
        ),
        "reference: `EXPLAIN ANALYZE` (binary, with start-up)": lambda: explain_analyze(
            args.binary, args.lake
        ),
        # As many bytes as ADBC's batches hold, the contender that runs first in each round.
        "reference: the same bytes through loopback TCP, no Arrow": lambda: through_loopback(
            fetched["bytes"]
        ),
    }
    fetched = {}
    times = {name: [] for name in contenders}
    # CPU per run of each contender: the server's, and the client's (this script for ADBC, the
    # child process otherwise), telling which side of a fetch the time goes to.
    server_cpu = {name: [] for name in contenders}
    client_cpu = {name: [] for name in contenders}
    try:
        for _ in range(3):
            for name, run in contenders.items():
                server_before, client_before = cpu_seconds(server.pid), own_and_children_cpu()
                if run is None:
                    elapsed, nbytes = fetch_with_adbc(addr)
                    fetched["bytes"] = nbytes
                else:
                    elapsed = run()
                times[name].append(elapsed)
                server_cpu[name].append(cpu_seconds(server.pid) - server_before)
                client_cpu[name].append(own_and_children_cpu() - client_before)
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    best = {name: min(runs) for name, runs in times.items()}
    baseline = best["in process, batches to a consumer"]
    mb = nbytes / 1e6
    print(f"\n{ROWS:,} rows, {mb:,.0f} MB of Arrow data ({QUERY})")
    print(
        "| contender | best of 3 | all runs | × in process | rows/s | MB/s "
        "| server CPU | client CPU |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name, runs in times.items():
        print(
            f"| {name} | {best[name]:.2f} s | {', '.join(f'{t:.2f}' for t in runs)} | "
            f"{best[name] / baseline:.2f} | {ROWS / best[name] / 1e6:.1f}M | {mb / best[name]:,.0f} "
            f"| {min(server_cpu[name]):.2f} s | {min(client_cpu[name]):.2f} s |"
        )
    print(
        f"\nFlight SQL (ADBC) / in process: {best['over Flight SQL (ADBC, Python)'] / baseline:.2f}, "
        f"(Rust client) {best['over Flight SQL (arrow-flight, Rust)'] / baseline:.2f} (target <= 1.3)"
    )
    print(f"server peak RSS {rss:,.0f} MB")


if __name__ == "__main__":
    main()
