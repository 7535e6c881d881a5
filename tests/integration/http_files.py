"""A plain HTTP file server for the tests: serves FOLDER on 127.0.0.1:PORT, with byte ranges.

`python -m http.server` ignores the Range header and answers every GET with the whole file, which a
Parquet reader (asking for a footer, then column chunks) rightly refuses; this one answers a range
with 206 and Content-Range, as web servers and CDNs do. It cannot list folders, like most of them.

    python http_files.py FOLDER PORT
"""

import http.server
import io
import os
import re
import sys


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        wanted = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            self.send_error(404, "folders are not listed")
            return None
        if wanted is None or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        first, last = wanted.groups()
        if first == "":
            start, end = max(size - int(last), 0), size - 1
        else:
            start, end = int(first), min(int(last) if last else size - 1, size - 1)
        if start > end:
            self.send_error(416)
            return None
        with open(path, "rb") as file:
            file.seek(start)
            body = file.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", self.date_time_string(int(os.path.getmtime(path))))
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    folder, port = sys.argv[1], int(sys.argv[2])
    handler = lambda *args: RangeHandler(*args, directory=folder)
    http.server.ThreadingHTTPServer(("127.0.0.1", port), handler).serve_forever()
