"""What every benchmark script shares: running the contenders, checking that they agree, the table.

A benchmark pits one usagelake table function against the fastest plain SQL we could write for
the same rows, run by DuckDB and by usagelake itself (DataFusion), and against the bare scan of
the columns the function reads. usagelake runs as the real release binary (`--format csv -c`),
so its times include starting the binary and registering the lake; DuckDB runs in a child
process of its own (duckdb_child.py) that connects before its clock starts. Each contender's
peak memory is that one process's maximum resident set, taken from os.wait4: RUSAGE_CHILDREN
would report the largest of all children so far instead.
"""

import argparse
import csv
import datetime
import decimal
import importlib.metadata
import io
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional

CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "duckdb_child.py")

# count(*) costs nothing more and gives the lake's size for the table's title.
BARE_SCAN_SQL = "SELECT count(*), sum(user_id), sum(CAST(ts AS BIGINT)) FROM events"
BARE_SCAN_LABEL = "usagelake, bare scan of `user_id`, `ts`"


@dataclass(frozen=True)
class Benchmark:
    """One table function and the plain SQL that must return the same rows.

    `plain_sql` is written once for both engines, with `{events}`, `{day}` and `{week}` standing
    for what their dialects spell differently (see Dialect). A target is None where the issue
    sets none.

    The rest is for a benchmark over other data than the events lake, and defaults to it: `lake`
    maps the --lake argument to the lake the contenders read (writing it first if need be), the
    two dialects (anything with a `sql(template)` method) spell `plain_sql` for DuckDB (made
    from the lake) and for DataFusion, `scan_sql`
    must return the scanned rows' count first (`rows_are` names them in the title), and
    `float_tolerance` is the relative difference allowed between floats (0: equal).
    """

    function: str
    question: str
    call: str
    plain_sql: str
    faster_than_duckdb: Optional[float]
    within_scan: Optional[float]
    lake: Optional[Callable[[str], str]] = None
    duckdb_dialect: Optional[Callable[[str], "Dialect"]] = None
    datafusion_dialect: Optional["Dialect"] = None
    scan_sql: str = BARE_SCAN_SQL
    scan_label: str = BARE_SCAN_LABEL
    rows_are: str = "events"
    float_tolerance: float = 0.0


@dataclass(frozen=True)
class Dialect:
    """The events table, and a UTC day and Monday week number of `ts`, as one engine spells them.

    Days count from 1970-01-01 and weeks from Monday 1969-12-29 (1970-01-01 was a Thursday, hence
    the + 3): whole-number arithmetic on the timestamp made DuckDB's distinct (user, week) pairs
    twice as fast as date_trunc on its TIMESTAMPTZ. It assumes the generated lake's `ts`,
    microseconds in UTC after 1970.
    """

    events: str
    day: str
    week: str

    def sql(self, template):
        """The template in this dialect."""
        return template.format(events=self.events, day=self.day, week=self.week)


DATAFUSION = Dialect(
    events="events",
    day="(CAST(ts AS BIGINT) / 86400000000)",
    week="((CAST(ts AS BIGINT) / 86400000000 + 3) / 7)",
)


def duckdb_dialect(lake):
    """DuckDB reads the lake's Parquet files directly; its `/` is a float division, `//` whole."""
    return Dialect(
        events=f"read_parquet('{os.path.join(lake, 'events', '*', '*.parquet')}')",
        day="(epoch_us(ts) // 86400000000)",
        week="((epoch_us(ts) // 86400000000 + 3) // 7)",
    )


@dataclass(frozen=True)
class Run:
    """One run of one contender: its seconds, its rows, and its process's peak resident bytes.

    `at_rest_bytes` is what a DuckDB process held before its query (Python and the library), so
    that its peak can be read fairly; 0 for usagelake, whose peak is the binary's alone.
    """

    seconds: float
    rows: list
    peak_bytes: int
    at_rest_bytes: int = 0


@dataclass(frozen=True)
class Contender:
    """A row of the table: its label and how to run it once."""

    label: str
    run: Callable[[], Run]


def run_child(command, stdin=b""):
    """Runs a command to its end and returns its wall seconds, its stdout and its own peak RSS.

    os.wait4 on the one pid gives that child's rusage alone. Errors go to a file, not a pipe, so
    that a chatty child cannot block while we read its output.
    """
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
        )
        process.stdin.write(stdin)
        process.stdin.close()
        output = process.stdout.read()
        process.stdout.close()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            errors.seek(0)
            raise SystemExit(f"{command[0]} failed ({process.returncode}):\n{errors.read().decode()}")
    return seconds, output, usage.ru_maxrss * 1024


def run_usagelake(binary, lake, sql):
    """The binary with the query, every row as CSV text (header dropped)."""
    seconds, output, peak = run_child([binary, "--lake", lake, "--format", "csv", "-c", sql])
    return Run(seconds, list(csv.reader(io.StringIO(output.decode())))[1:], peak)


def run_duckdb(threads, sql):
    """DuckDB in its own process; the time is the one it measured around the query."""
    _, output, peak = run_child([sys.executable, CHILD, str(threads)], sql.encode())
    seconds, rows, at_rest = pickle.loads(output)
    return Run(seconds, rows, peak, at_rest)


def run_chdb(threads, sql):
    """chDB (ClickHouse in-process) in its own process: `python common.py chdb THREADS`, SQL on
    stdin; like duckdb_child.py, it connects (and runs SELECT 1) before its clock starts."""
    _, output, peak = run_child([sys.executable, os.path.abspath(__file__), "chdb", str(threads)],
                                sql.encode())
    seconds, rows, at_rest = pickle.loads(output)
    return Run(seconds, rows, peak, at_rest)


def chdb_child(threads):
    import chdb

    sql = sys.stdin.read()
    connection = chdb.connect(":memory:")  # kept: the cursor dies with it
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    cursor.fetchall()
    with open("/proc/self/status") as status:
        at_rest = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmRSS:"))
    started = time.perf_counter()
    cursor.execute(f"{sql} SETTINGS max_threads = {threads}")
    rows = [tuple(row) for row in cursor.fetchall()]
    seconds = time.perf_counter() - started
    pickle.dump((seconds, rows, at_rest), sys.stdout.buffer)


def cell_as(text, reference):
    """A CSV cell read as the type of DuckDB's value, so that both compare exactly (floats too)."""
    if reference is None:
        return None if text == "" else text
    if isinstance(reference, bool):
        return {"true": True, "false": False}.get(text, text)
    if isinstance(reference, datetime.datetime):
        try:
            read = datetime.datetime.fromisoformat(text)
        except ValueError:
            return text
        if reference.tzinfo is None and read.tzinfo is not None:
            read = read.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return read
    parsers = {
        int: int,
        float: float,
        datetime.date: datetime.date.fromisoformat,
        decimal.Decimal: decimal.Decimal,
    }
    try:
        return parsers.get(type(reference), str)(text)
    except (ValueError, decimal.InvalidOperation):
        return text


def same(read, expected, float_tolerance):
    """Whether a cell read from CSV is DuckDB's value: equal, or for floats within the tolerance."""
    if float_tolerance and isinstance(expected, float) and isinstance(read, float):
        return abs(read - expected) <= float_tolerance * max(abs(read), abs(expected))
    return read == expected


def check_agreement(reference, label, rows, float_tolerance=0.0):
    """Stops the benchmark at the first row where `rows` (CSV text) differ from DuckDB's rows.

    No time is worth showing for a wrong answer; DuckDB's typed rows are the reference. Floats
    must be equal unless `float_tolerance` allows a relative difference.
    """
    if len(rows) != len(reference):
        raise SystemExit(f"{label}: {len(rows)} rows, DuckDB {len(reference)}")
    for number, (row, expected) in enumerate(zip(rows, reference), start=1):
        read = tuple(cell_as(text, value) for text, value in zip(row, expected))
        if len(row) != len(expected) or not all(
            same(cell, value, float_tolerance) for cell, value in zip(read, expected)
        ):
            raise SystemExit(f"{label} differs from DuckDB at row {number}: {row} vs {expected}")


def measure(contenders, repeat, check):
    """Every contender's runs, taken in turn round after round.

    Turns spread the noise of other work on the machine over all contenders alike. `check` sees
    the first round's runs, before any further time is spent.
    """
    runs = {contender.label: [] for contender in contenders}
    for round_number in range(repeat):
        for contender in contenders:
            runs[contender.label].append(contender.run())
        if round_number == 0:
            check({label: done[0] for label, done in runs.items()})
    return runs


def megabytes(size):
    """Decimal megabytes, the unit the README uses."""
    return f"{size / 1e6:,.0f} MB"


def verdict(ratio, target, at_least):
    """A ratio against its target, said plainly."""
    if target is None:
        return f"{ratio:.2f}x (no target)"
    met = ratio >= target if at_least else ratio <= target
    return f"{ratio:.2f}x (target {'≥' if at_least else '≤'} {target:g}x: {'met' if met else 'NOT met'})"


def print_table(benchmark, labels, runs, repeat, threads):
    """One markdown table: best seconds, ratio to the table function, peak RSS, and the targets."""
    ours, duck, _, scan = labels
    best = {label: min(run.seconds for run in done) for label, done in runs.items()}
    scanned = int(runs[scan][0].rows[0][0])
    rows = len(runs[ours][0].rows)
    print(f"\n### `{benchmark.function}`: {benchmark.question}\n")
    print(f"{scanned:,} {benchmark.rows_are}, {rows} result rows, {threads} threads, best of {repeat} "
          f"(contenders in turn); the function's, DuckDB's and DataFusion's rows agree.\n")
    print("| contender | seconds | × the function's time | peak RSS |")
    print("|---|---:|---:|---:|")
    for label, done in runs.items():
        peak = max(run.peak_bytes for run in done)
        print(f"| {label} | {best[label]:.2f} | {best[label] / best[ours]:.2f} | {megabytes(peak)} |")
    at_rest = max(run.at_rest_bytes for run in runs[duck])
    print(f"\nSpeed-up over DuckDB: {verdict(best[duck] / best[ours], benchmark.faster_than_duckdb, True)}. "
          f"The function's time over the bare scan's: "
          f"{verdict(best[ours] / best[scan], benchmark.within_scan, False)}. "
          f"DuckDB's seconds are its query alone, its peak RSS its whole process "
          f"({megabytes(at_rest)} before the query); usagelake's are the binary's, start-up included.")


def parse_args(function):
    parser = argparse.ArgumentParser(description=f"The {function} benchmark (see bench/run).")
    parser.add_argument("--binary", required=True, help="the release usagelake binary")
    parser.add_argument("--lake", required=True, help="the generated lake")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender; the best counts")
    return parser.parse_args()


def main(benchmark):
    """Runs one benchmark from the command line and prints its table."""
    args = parse_args(benchmark.function)
    threads = os.cpu_count()
    lake = benchmark.lake(args.lake) if benchmark.lake else args.lake

    def usagelake(sql):
        return lambda: run_usagelake(args.binary, lake, sql)

    duckdb_sql = (benchmark.duckdb_dialect or duckdb_dialect)(lake).sql(benchmark.plain_sql)
    datafusion_sql = (benchmark.datafusion_dialect or DATAFUSION).sql(benchmark.plain_sql)
    contenders = [
        Contender(f"usagelake `{benchmark.call}`", usagelake(f"SELECT * FROM {benchmark.call}")),
        Contender(
            f"DuckDB {importlib.metadata.version('duckdb')}, fastest plain SQL",
            lambda: run_duckdb(threads, duckdb_sql),
        ),
        Contender("usagelake, the same plain SQL on DataFusion", usagelake(datafusion_sql)),
        Contender(benchmark.scan_label, usagelake(benchmark.scan_sql)),
    ]
    labels = [contender.label for contender in contenders]

    def check(first):
        for label in (labels[0], labels[2]):
            check_agreement(
                first[labels[1]].rows, label, first[label].rows, benchmark.float_tolerance
            )

    runs = measure(contenders, args.repeat, check)
    print_table(benchmark, labels, runs, args.repeat, threads)


if __name__ == "__main__" and sys.argv[1:2] == ["chdb"]:
    chdb_child(int(sys.argv[2]))
