"""A CPython HTTP server that runs every invocation in a fresh `python3` process.

The "isolation by process" peer of the HTTP benchmark: a threading stdlib HTTP server whose
request handler starts `PYTHON -I run_function.py ...` for each request (any method, any
path), feeds it the request body, and answers with the child's JSON (200) or its stderr
(500). Keep-alive is on (HTTP/1.1), like wasmfn, so the load generator's connections stay open
and the measured cost is the child process, not TCP set-up.

usage: server.py --listen 127.0.0.1:8090 --python PYTHON --module-dir DIR --sdk-dir DIR \
                 --entry functions.hello_world
"""

import argparse
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RUNNER = Path(__file__).resolve().with_name("run_function.py")
# A child slower than this is killed and the request answered with 504.
CHILD_TIMEOUT_S = 60


class ProcessPerCallServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog (5) would drop connections when 64 clients connect at once.
    request_queue_size = 1024

    def __init__(self, address, child_command):
        super().__init__(address, InvokeHandler)
        self.child_command = child_command


class InvokeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def invoke(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            child = subprocess.run(
                self.server.child_command,
                input=body,
                capture_output=True,
                timeout=CHILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            self.answer(504, b'{"error": "the function process timed out"}')
            return
        if child.returncode != 0:
            self.answer(500, child.stderr[-2000:] or b"the function process failed")
            return
        self.answer(200, child.stdout)

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = invoke

    def log_message(self, format, *args):  # noqa: A002 (the stdlib's parameter name)
        # One line per request on stderr would cost more than a small function does.
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8090")
    parser.add_argument("--python", default=sys.executable, help="interpreter of the children")
    parser.add_argument("--module-dir", required=True, help="folder holding functions.py")
    parser.add_argument("--sdk-dir", required=True, help="folder holding the ixoncdkingress package")
    parser.add_argument("--entry", default="functions.hello_world")
    args = parser.parse_args()

    host, _, port = args.listen.rpartition(":")
    command = [
        args.python, "-I", str(RUNNER),
        str(Path(args.module_dir).resolve()), str(Path(args.sdk_dir).resolve()), args.entry,
    ]
    with ProcessPerCallServer((host, int(port)), command) as server:
        print(f"process-per-call serving on http://{args.listen}/", file=sys.stderr, flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
