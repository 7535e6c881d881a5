"""object_store: a metric query over the lake in a local S3 server against the same lake on disk.

The lake is uploaded to moto's S3 server (PyPI `moto[server]`, the one the integration tests run)
on loopback, and the release binary runs `active_users('events')` over `s3://bench/lake/` and over
the folder, in turn round after round (common.measure); both must return the same rows. Requests
are counted from outside the binary: on S3, the request lines of moto's own access log during one
run; on disk, the binary's `openat` calls of .parquet files and its `pread64` calls (one per range
read) under strace, in a run of its own since strace slows every call it traces.

moto is a Python server that keeps objects in memory: its times are those of a local server with
no network, not of S3, and the ratio says how much a store's round trips and copies cost usagelake.
"""

import argparse
import collections
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import Contender, measure, megabytes, run_child, run_usagelake, check_agreement

QUERY = "SELECT * FROM active_users('events')"
BUCKET = "bench"
# werkzeug's access log line, `"GET /bench/lake/... HTTP/1.1" 206 -`, colours some methods.
REQUEST_LINE = re.compile(r'"(?:\x1b\[[0-9;]*m)*(GET|HEAD|PUT|POST|DELETE) (\S+)')


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_moto(log):
    """moto_server of this venv on a free port, logging every request to `log`; its endpoint."""
    port = free_port()
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint, timeout=1).read()
            return server, endpoint
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"moto_server did not answer on {endpoint}")


def upload(endpoint, lake):
    """Every file of the lake into s3://bench/lake/; the bytes uploaded."""
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="bench", aws_secret_access_key="bench",
    )
    s3.create_bucket(Bucket=BUCKET)
    total = 0
    for folder, _, files in os.walk(lake):
        for name in files:
            path = os.path.join(folder, name)
            s3.upload_file(path, BUCKET, "lake/" + os.path.relpath(path, lake))
            total += os.path.getsize(path)
    return total


def logged_requests(log_path):
    """The requests in moto's log so far, by kind: a GET of the bucket is a LIST."""
    kinds = collections.Counter()
    with open(log_path, errors="replace") as log:
        for line in log:
            request = REQUEST_LINE.search(line)
            if request:
                method, target = request.groups()
                is_list = method == "GET" and target.split("?")[0].strip("/") == BUCKET
                kinds["LIST" if is_list else method] += 1
    return kinds


def disk_calls(binary, lake):
    """The .parquet files a disk run opens and the pread64 calls it makes, under strace."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as trace:
        subprocess.run(
            ["strace", "-f", "-qq", "-e", "trace=openat,pread64", "-o", trace.name,
             binary, "--lake", lake, "--format", "csv", "-c", QUERY],
            check=True, stdout=subprocess.DEVNULL,
        )
        lines = open(trace.name, errors="replace").read().splitlines()
    opens = sum(1 for line in lines if "openat(" in line and ".parquet" in line and "= -1" not in line)
    reads = sum(1 for line in lines if "pread64(" in line)
    return opens, reads


def main():
    parser = argparse.ArgumentParser(description="The object_store benchmark (see bench/run).")
    parser.add_argument("--binary", required=True, help="the release usagelake binary")
    parser.add_argument("--lake", required=True, help="the generated lake, on disk")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each contender; the best counts")
    args = parser.parse_args()
    lake = os.path.abspath(args.lake)

    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        server, endpoint = start_moto(log)
        try:
            started = time.perf_counter()
            uploaded = upload(endpoint, lake)
            upload_seconds = time.perf_counter() - started
            for key in [k for k in os.environ if k.startswith("AWS_")]:
                del os.environ[key]
            os.environ.update(
                AWS_ENDPOINT=endpoint, AWS_ALLOW_HTTP="true", AWS_REGION="us-east-1",
                AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
            )
            remote = f"s3://{BUCKET}/lake/"
            on_disk = "usagelake, lake on disk"
            on_s3 = "usagelake, lake in moto S3 on loopback"
            s3_requests = []

            def s3_run():
                before = logged_requests(log.name)
                run = run_usagelake(args.binary, remote, QUERY)
                s3_requests.append(logged_requests(log.name) - before)
                return run

            contenders = [
                Contender(on_disk, lambda: run_usagelake(args.binary, lake, QUERY)),
                Contender(on_s3, s3_run),
            ]

            def check(first):
                check_agreement(first[on_disk].rows, on_s3, first[on_s3].rows)

            runs = measure(contenders, args.repeat, check)
            opens, reads = disk_calls(args.binary, lake)
        finally:
            server.terminate()
            server.wait()

    best = {label: min(run.seconds for run in done) for label, done in runs.items()}
    files = sum(1 for _, _, names in os.walk(lake) for name in names if name.endswith(".parquet"))
    print(f"\n### object_store: `{QUERY}`, the lake on disk and in a local S3 server\n")
    print(f"{files} Parquet files, {megabytes(uploaded)} (uploaded to moto in {upload_seconds:.0f} s), "
          f"{len(runs[on_disk][0].rows)} result rows, best of {args.repeat} (contenders in turn); "
          f"both return the same rows.\n")
    print("| contender | seconds | × disk | requests | peak RSS |")
    print("|---|---:|---:|---|---:|")
    print(f"| {on_disk} | {best[on_disk]:.2f} | 1.00 | {opens} .parquet opens, {reads} `pread64` calls "
          f"(strace, one more run) | {megabytes(max(r.peak_bytes for r in runs[on_disk]))} |")
    totals = [sum(kinds.values()) for kinds in s3_requests]
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(s3_requests[0].items()))
    print(f"| {on_s3} | {best[on_s3]:.2f} | {best[on_s3] / best[on_disk]:.2f} | {min(totals)} to "
          f"{max(totals)} HTTP requests a run (moto's log; the first: {kinds}) | "
          f"{megabytes(max(r.peak_bytes for r in runs[on_s3]))} |")


if __name__ == "__main__":
    main()
