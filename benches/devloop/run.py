#!/usr/bin/env python3
"""The development loop, timed with the real `wasmfn` binary on a function made by `wasmfn new`:

  build, cold          `wasmfn build DIR` of a folder never built (toolchain installed)
  build, edit          the same after a change to its .py file (what every save costs)
  build, requirements  the same after adding a pure-Python requirement (pip resolves it)
  dev, edit -> answer  `wasmfn dev DIR` running: a .py file is saved, and the invoke URL is
                       polled until it answers with the new text (as a developer waits for
                       it: the checks, the sources given to the last bundle, the swap)
  dev, requirements -> answer
                       the same, with requirements.txt changed too: a full build, a Cranelift
                       compile and the swap

Writes <out>/devloop.json and <out>/devloop.md.

    python3 benches/devloop/run.py --wasmfn target/release/wasmfn --out benches/out [--runs N]

Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAME = "bench-loop"
MODULE = "bench_loop"
# A small pure-Python package with no dependencies, as a requirements change.
REQUIREMENT = "python-dateutil==2.9.0.post0"
ANSWER_TIMEOUT_S = 900


def log(message: str) -> None:
    print(f"[devloop] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return elapsed


def answer(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())["message"]
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def wait_for(url: str, wanted: str, since: float) -> float:
    while time.monotonic() - since < ANSWER_TIMEOUT_S:
        if answer(url) == wanted:
            return time.monotonic() - since
        time.sleep(0.05)
    raise SystemExit(f"{url} never answered {wanted!r}")


def set_greeting(source: Path, text: str) -> None:
    lines = source.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("TEXT = ")]
    source.write_text(f"TEXT = {text!r}\n" + "".join(kept).replace(
        'return {"message": f"{greeting}, {name}!"}', 'return {"message": TEXT}'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasmfn", default=str(REPO / "target/release/wasmfn"))
    parser.add_argument("--out", default=str(REPO / "benches/out"))
    parser.add_argument("--runs", type=int, default=3, help="edits timed per measure")
    args = parser.parse_args()
    wasmfn = str(Path(args.wasmfn).resolve())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="wasmfn-devloop-") as scratch:
        scratch = Path(scratch)
        env = {**os.environ, "WASMFN_LOG": "warn",
               "WASMFN_CACHE_DIR": str(scratch / "compiled")}
        folder = scratch / NAME
        subprocess.run([wasmfn, "new", NAME, "--dir", str(folder)], env=env, check=True,
                       capture_output=True)
        source = folder / "functions" / f"{MODULE}.py"
        build = [wasmfn, "build", str(folder)]

        log("build, cold")
        results["build, cold"] = [timed(build, env)]
        results["build, edit"] = []
        for run in range(args.runs):
            set_greeting(source, f"edit {run}")
            results["build, edit"].append(timed(build, env))
            log(f"build, edit {run}: {results['build, edit'][-1]:.1f} s")
        (folder / "requirements.txt").write_text(REQUIREMENT + "\n")
        results["build, requirements"] = [timed(build, env)]
        log(f"build, requirements: {results['build, requirements'][0]:.1f} s")

        port = free_port()
        url = f"http://127.0.0.1:{port}/spaces/default/functions/{NAME}/invoke"
        dev = subprocess.Popen(
            [wasmfn, "dev", str(folder), "--listen", f"127.0.0.1:{port}",
             "--data-dir", str(scratch / "dev-data")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            started = time.monotonic()
            set_greeting(source, "edit ready")
            # The first answer may come from the last build's bundle or this edit's.
            wait_for(url, "edit ready", started)
            results["dev, edit -> answer"] = []
            for run in range(args.runs):
                text = f"dev edit {run}"
                started = time.monotonic()
                set_greeting(source, text)
                results["dev, edit -> answer"].append(wait_for(url, text, started))
                log(f"dev, edit -> answer {run}: {results['dev, edit -> answer'][-1]:.1f} s")
            started = time.monotonic()
            (folder / "requirements.txt").write_text("")
            set_greeting(source, "requirements changed")
            results["dev, requirements -> answer"] = [
                wait_for(url, "requirements changed", started)
            ]
            log(f"dev, requirements -> answer: {results['dev, requirements -> answer'][0]:.1f} s")
        finally:
            dev.terminate()
            dev.wait(timeout=60)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "seconds": results,
    }
    (out / "devloop.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"Development loop ({report['date']}, {machine}); seconds, median of the runs",
        "",
        "| step | median s | runs |",
        "|---|---:|---|",
    ]
    for step, times in results.items():
        runs = ", ".join(f"{t:.1f}" for t in times)
        lines.append(f"| {step} | {statistics.median(times):.1f} | {runs} |")
    text = "\n".join(lines) + "\n"
    (out / "devloop.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
