"""The systems the HTTP benchmark compares: how each is installed, started and called.

Each `System` installs or builds what it needs into benches/.cache (pinned versions, reused
between runs), says how its server is started, and which request calls the hello-world
function. A step that fails raises `SetupError` with the system's name and the reason, so the
driver can mark that system failed and go on with the others.
"""

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from load import Request

WASMTIME_CLI_VERSION = "48.0.8"
# The subcommands and engine features `wasmtime serve` of a Python component needs; the rest
# of wasmtime-cli's defaults (winch, gc, wasi-nn, wasi-tls, ...) only lengthen the build.
# 48.0.8's serve.rs does not compile without component-model-async.
WASMTIME_CLI_FEATURES = (
    "run,serve,compile,cranelift,component-model,component-model-async,pooling-allocator,"
    "parallel-compilation"
)
HELLO_ENTRY = "functions.hello_world"


class SetupError(Exception):
    """A system could not be installed, built or started; the message says why."""


@dataclass
class Workspace:
    """Where things are: the repository, the cache, the output and log folders."""

    repo: Path
    cache: Path
    out: Path
    wasmfn_bin: Path
    build_wasmfn: bool
    # Fermyon Spin's `spin` binary, when the caller has one (`--spin-bin`): no registry here
    # serves Spin, so the suite cannot install it (benches/README.md, "Spin").
    spin_bin: Path | None = None

    @property
    def benches(self) -> Path:
        return self.repo / "benches"

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    @property
    def hello_world(self) -> Path:
        return self.repo / "examples" / "hello-world"


@dataclass
class Launch:
    """How to start a system's server."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


class System:
    """A system under test. Subclasses fill in the four methods below."""

    name = ""
    label = ""
    # The first start of some systems compiles (Cranelift, componentize-py): allow for it.
    ready_timeout_s = 120.0
    # What a good answer contains (the driver waits for it before measuring).
    ready_text = "Hello World"

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.info: dict[str, object] = {}

    @classmethod
    def available(cls, workspace: Workspace) -> bool:
        """Whether a run of every system includes this one (the suite installs all but those
        it cannot, which the caller supplies)."""
        return True

    def prepare(self) -> None:
        """Install or build what the server needs (cached). Raises SetupError."""

    def launch(self, port: int) -> Launch:
        raise NotImplementedError

    def request(self, valid_for_s: float = 0) -> Request:
        """The request that calls hello world; it must stay valid for `valid_for_s` seconds."""
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        """Versions and configuration, for the report."""
        return dict(self.info)

    def run_step(self, argv: list[str], what: str, log_name: str, **kwargs) -> None:
        """Runs one set-up step, logging its output; a failure becomes a SetupError."""
        log = self.ws.logs / log_name
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as out:
            out.write(f"\n$ {shlex.join(argv)}\n")
            out.flush()
            try:
                finished = subprocess.run(
                    argv, stdout=out, stderr=subprocess.STDOUT, check=False, **kwargs
                )
            except OSError as error:
                raise SetupError(f"{what}: could not start {argv[0]}: {error}") from error
        if finished.returncode != 0:
            lines = log.read_text(errors="replace").splitlines()
            raise SetupError(
                f"{what} failed (exit {finished.returncode}): {last_line(lines)} (log {log})\n"
                + "\n".join(lines[-15:])
            )


def last_line(lines: list[str]) -> str:
    """The last non-blank line of some output: usually the error."""
    return next((line.strip() for line in reversed(lines) if line.strip()), "no output")


def output_of(argv: list[str], **kwargs) -> str:
    """Stdout (or stderr) of a quick command, stripped; '' when it cannot run."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    except OSError:
        return ""
    return (done.stdout or done.stderr).strip()


def tree_sha256(*paths: Path) -> str:
    """A short content hash of files and folders, to key cached builds."""
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def ensure_venv(venv: Path, requirements: Path, log_system: System, what: str) -> Path:
    """A virtualenv with exactly `requirements` installed; rebuilt when the file changes."""
    stamp = venv / ".requirements.sha256"
    wanted = tree_sha256(requirements)
    python = venv / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    log_name = f"{log_system.name}-setup.log"
    base = shutil.which("python3") or sys.executable
    log_system.run_step([base, "-m", "venv", "--clear", str(venv)], f"{what}: venv", log_name)
    log_system.run_step(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
         "-r", str(requirements)],
        f"{what}: pip install -r {requirements.name}",
        log_name,
    )
    stamp.write_text(wanted)
    return python


def componentize_py_version(repo: Path) -> str:
    """The componentize-py wasmfn pins (runtime/src/toolchain.rs), so both peers use one."""
    source = (repo / "runtime" / "src" / "toolchain.rs").read_text()
    match = re.search(r'COMPONENTIZE_PY_VERSION: &str = "([^"]+)"', source)
    if match is None:
        raise SetupError("cannot find COMPONENTIZE_PY_VERSION in runtime/src/toolchain.rs")
    return match.group(1)


def wasmfn_home() -> Path:
    """wasmfn's own directory, found the way runtime/src/toolchain.rs finds it."""
    if os.environ.get("WASMFN_HOME"):
        return Path(os.environ["WASMFN_HOME"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "wasmfn"
    return Path.home() / ".cache" / "wasmfn"


class Wasmfn(System):
    name = "wasmfn"
    label = "wasmfn"
    # First start: componentize-py install and build (~20 s) plus Cranelift (~8 s); generous.
    ready_timeout_s = 900.0

    def prepare(self) -> None:
        if self.ws.build_wasmfn:
            self.run_step(
                ["cargo", "build", "--release", "--bin", "wasmfn"],
                "wasmfn: cargo build --release",
                "wasmfn-build.log",
                cwd=self.ws.repo,
            )
        binary = self.ws.wasmfn_bin
        if not os.access(binary, os.X_OK):
            raise SetupError(
                f"wasmfn: no binary at {binary}; build it with "
                "`cargo build --release --bin wasmfn` or drop --no-build"
            )
        data = self.ws.cache / "wasmfn" / "data"
        # A fresh data directory each run (state, invocation log); compiled code is kept.
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        self.data_dir = data
        self.compiled_dir = self.ws.cache / "wasmfn" / "compiled"
        self.extra_args = shlex.split(os.environ.get("WASMFN_SERVE_ARGS", ""))
        commit = output_of(["git", "-C", str(self.ws.repo), "rev-parse", "--short", "HEAD"])
        dirty = output_of(["git", "-C", str(self.ws.repo), "status", "--porcelain",
                           "--untracked-files=no"])
        pool = re.search(r"--pool-per-function.*?\[default: (\d+)\]",
                         output_of([str(binary), "serve", "--help"]), re.DOTALL)
        built = datetime.fromtimestamp(binary.stat().st_mtime, timezone.utc)
        self.info = {
            "version": output_of([str(binary), "--version"]),
            "commit": commit + ("+dirty" if dirty else ""),
            "binary": str(binary),
            # A dirty tree says little about which code was measured: these identify the binary.
            "binary_sha256": tree_sha256(binary),
            "binary_built": built.isoformat(timespec="seconds"),
            "componentize_py": componentize_py_version(self.ws.repo),
            "mode": "fresh wasmtime instance per invocation, `wasmfn serve` defaults, "
                    "Cranelift's code (`--baseline-tier false`)"
                    + (f" (up to {pool.group(1)} never-used instances made ahead of demand "
                       "per function)" if pool else ""),
            "extra_serve_args": self.extra_args,
        }

    def launch(self, port: int) -> Launch:
        argv = [
            str(self.ws.wasmfn_bin), "serve", str(self.ws.hello_world),
            "--listen", f"127.0.0.1:{port}",
            "--default-access", "public",
            "--data-dir", str(self.data_dir),
            "--cache-dir", str(self.compiled_dir),
            # Cranelift's code, the steady state, from the first measured call: with the
            # baseline tier a cold cache would have the first runs measure Winch's code while
            # Cranelift compiles beside them (benches/deploy/run.py measures the tiers).
            "--baseline-tier", "false",
            *self.extra_args,
        ]
        self.info["command"] = shlex.join(argv)
        return Launch(argv)

    def request(self, valid_for_s: float = 0) -> Request:
        return Request("GET", "/spaces/default/functions/hello-world/invoke")


class Ixoncdkingress(System):
    name = "ixoncdkingress"
    label = "ixoncdkingress"

    def prepare(self) -> None:
        peer = self.ws.benches / "peers" / "ixoncdkingress"
        requirements = peer / "requirements.txt"
        pinned = re.search(r"^ixoncdkingress==(\S+)", requirements.read_text(), re.MULTILINE)
        if pinned is None:
            raise SetupError(f"ixoncdkingress: no `ixoncdkingress==` pin in {requirements}")
        self.version = pinned.group(1)
        venv = self.ws.cache / f"ixoncdkingress-{self.version}"
        self.python = ensure_venv(venv, requirements, self, "ixoncdkingress")
        self.signer = peer / "signed_request.py"
        self.keys = self.ws.cache / "ixoncdkingress-keys"
        self.run_step([str(self.python), str(self.signer), "keygen", str(self.keys)],
                      "ixoncdkingress: signing key", "ixoncdkingress-setup.log")
        self.public_key = (self.keys / "signing-key.pub.pem").read_text()
        # It reads context_values.* from its working directory in development mode; keep it
        # out of the repository.
        self.workdir = self.ws.cache / "ixoncdkingress-run"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.info = {
            "version": self.version,
            "python": output_of([str(self.python), "--version"]),
            "mode": "production mode (PRODUCTION_MODE=true): Ed25519-signed POST / calls, "
                    "no MongoDB, no Docker",
            "wsgi_provider": "wsgiref (the only provider it ships: one thread, HTTP/1.0, "
                             "a new connection per request)",
            "isolation": "none: every call runs in the one server process",
            "why_this_version": "1.0.0 needs Python 3.12 and, in development mode, Docker "
                                "MongoDB; 0.0.21 is the newest release that runs on Python "
                                "3.11 without Docker",
        }

    def launch(self, port: int) -> Launch:
        env = {
            "PRODUCTION_MODE": "true",
            "CBC_PATH": str(self.ws.hello_world),
            "CBC_SIGNATURE_PUBLIC_KEYS": self.public_key,
            "HTTP_SERVER_BIND": "127.0.0.1",
            "HTTP_SERVER_PORT": str(port),
            "WSGI_PROVIDER": "wsgiref",
        }
        argv = [str(self.python), "-m", "ixoncdkingress"]
        self.info["command"] = shlex.join(
            [f"{k}=..." if k == "CBC_SIGNATURE_PUBLIC_KEYS" else f"{k}={v}"
             for k, v in env.items()] + argv
        )
        return Launch(argv, env, self.workdir)

    def request(self, valid_for_s: float = 0) -> Request:
        return self.signed(HELLO_ENTRY, {}, valid_for_s)

    def signed(self, entry: str, arguments: dict, valid_for_s: float = 0,
               context: dict | None = None, internal_config: dict | None = None) -> Request:
        """The signed `POST /` calling `entry` with `arguments` (and the call's `context` and
        `internalConfig`, when given)."""
        # ixoncdkingress refuses a call whose created_on is over 60 s old; a run longer than
        # ~50 s signs a timestamp ahead of time so the same body stays valid to the end.
        created_on = datetime.now(timezone.utc) + timedelta(seconds=max(0.0, valid_for_s - 50))
        signer = subprocess.run(
            [str(self.python), str(self.signer), "sign", str(self.keys), entry,
             "--created-on", created_on.isoformat(), "--arguments", json.dumps(arguments),
             "--context", json.dumps(context or {}),
             "--internal-config", json.dumps(internal_config or {})],
            capture_output=True, text=True, check=False,
        )
        if signer.returncode != 0:
            raise SetupError(f"ixoncdkingress: signing the request failed: {signer.stderr[-500:]}")
        call = json.loads(signer.stdout)
        return Request(
            "POST", "/", call["body"],
            {"Content-Type": "application/json", "Authorization": call["authorization"]},
        )


class ProcessPerCall(System):
    name = "process-per-call"
    label = "CPython process per call"

    def prepare(self) -> None:
        self.python = Path(sys.executable)
        self.server = self.ws.benches / "peers" / "process_per_call" / "server.py"
        self.info = {
            "python": platform.python_version(),
            "interpreter": str(self.python),
            "mode": "stdlib ThreadingHTTPServer (HTTP/1.1 keep-alive); every request starts "
                    "a fresh `python3 -I` process that imports functions.py and calls "
                    "hello_world",
            "sdk": "wasmfn's ixoncdkingress compatibility package (guest-python/), the same "
                   "Python code the wasmfn bundle runs",
            "isolation": "one OS process per invocation",
        }

    def launch(self, port: int) -> Launch:
        argv = [
            str(self.python), str(self.server),
            "--listen", f"127.0.0.1:{port}",
            "--python", str(self.python),
            "--module-dir", str(self.ws.hello_world),
            "--sdk-dir", str(self.ws.repo / "guest-python"),
            "--entry", HELLO_ENTRY,
        ]
        self.info["command"] = shlex.join(argv)
        return Launch(argv)

    def request(self, valid_for_s: float = 0) -> Request:
        return Request("GET", "/")


class WasmtimeServe(System):
    name = "wasmtime-serve"
    label = f"wasmtime serve {WASMTIME_CLI_VERSION}"
    ready_timeout_s = 300.0

    def prepare(self) -> None:
        self.wasmtime = self.install_wasmtime()
        wit = self.wasi_http_wit()
        world_version = re.search(
            r"^package wasi:http@(\S+);", (wit / "deps" / "http.wit").read_text(), re.MULTILINE
        )
        if world_version is None:
            raise SetupError(f"wasmtime-serve: no `package wasi:http@...` in {wit}/deps/http.wit")
        world = f"wasi:http/proxy@{world_version.group(1)}"
        componentize_py, cpy_version = self.componentize_py()
        app = self.ws.benches / "peers" / "wasi_http_hello"
        build = self.ws.cache / "wasi-http-hello"
        key = tree_sha256(app / "app.py", wit) + f"-cpy{cpy_version}"
        component = build / f"app-{key}.wasm"
        if not component.exists():
            build.mkdir(parents=True, exist_ok=True)
            for stale in build.glob("app-*"):
                stale.unlink()
            self.run_step(
                [str(componentize_py), "-d", str(wit), "-w", world, "componentize", "app",
                 "-p", str(app), "-o", str(component)],
                "wasmtime-serve: componentize-py build of peers/wasi_http_hello/app.py",
                "wasmtime-serve-setup.log",
            )
        # Compile once with Cranelift and serve the .cwasm, as wasmfn serves its cached one.
        self.cwasm = component.with_name(f"{component.stem}-wasmtime{WASMTIME_CLI_VERSION}.cwasm")
        if not self.cwasm.exists():
            self.run_step(
                [str(self.wasmtime), "compile", str(component), "-o", str(self.cwasm)],
                "wasmtime-serve: wasmtime compile", "wasmtime-serve-setup.log",
            )
        self.extra_args = shlex.split(os.environ.get("WASMTIME_SERVE_ARGS", ""))
        self.info = {
            "version": output_of([str(self.wasmtime), "--version"]),
            "features": self.features,
            "componentize_py": cpy_version,
            "world": world,
            "component": str(component),
            "component_mb": round(component.stat().st_size / 1e6, 1),
            "mode": "fresh instance per request (WASIp2 default max-instance-reuse-count 1); "
                    "pooling allocator when the host allows it (wasmtime serve's default)",
            "extra_serve_args": self.extra_args,
        }

    def install_wasmtime(self) -> Path:
        root = self.ws.cache / "wasmtime-cli"
        binary = root / "bin" / "wasmtime"
        features_file = root / "features.txt"
        if WASMTIME_CLI_VERSION in output_of([str(binary), "--version"]):
            self.features = features_file.read_text().strip() if features_file.exists() else "?"
            return binary
        print(f"  wasmtime-serve: building wasmtime-cli {WASMTIME_CLI_VERSION} with cargo "
              f"(first run only, 10-30 min on 2 cores; log: {self.ws.logs}/wasmtime-cli-install.log)",
              flush=True)
        # A target dir of our own: an interrupted or failed build resumes where it stopped.
        target = self.ws.cache / "wasmtime-cli-build"
        base = ["cargo", "install", "--locked", "wasmtime-cli", "--version",
                WASMTIME_CLI_VERSION, "--root", str(root), "--target-dir", str(target)]
        try:
            self.run_step(
                [*base, "--no-default-features", "--features", WASMTIME_CLI_FEATURES],
                "wasmtime-serve: cargo install wasmtime-cli (trimmed features)",
                "wasmtime-cli-install.log",
            )
            self.features = WASMTIME_CLI_FEATURES
        except SetupError as trimmed:
            print(f"  wasmtime-serve: the trimmed build failed, trying default features\n"
                  f"    ({str(trimmed).splitlines()[0]})", flush=True)
            self.run_step([*base, "--force"], "wasmtime-serve: cargo install wasmtime-cli",
                          "wasmtime-cli-install.log")
            self.features = "default"
        features_file.write_text(self.features + "\n")
        shutil.rmtree(target, ignore_errors=True)  # ~2 GB of build artifacts
        return binary

    def wasi_http_wit(self) -> Path:
        """wasi:http WIT of wasmtime-wasi-http (the crate cargo install just fetched), cached."""
        cached = self.ws.cache / f"wasi-http-wit-{WASMTIME_CLI_VERSION}"
        if (cached / "deps" / "http.wit").exists():
            return cached
        cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
        sources = sorted(
            cargo_home.glob(f"registry/src/*/wasmtime-wasi-http-{WASMTIME_CLI_VERSION}/wit")
        )
        if not sources:
            raise SetupError(
                f"wasmtime-serve: wasmtime-wasi-http-{WASMTIME_CLI_VERSION} sources are not in "
                f"{cargo_home}/registry/src; delete {self.ws.cache}/wasmtime-cli and run again "
                "so cargo install fetches them"
            )
        shutil.copytree(sources[-1], cached)
        return cached

    def componentize_py(self) -> tuple[Path, str]:
        """wasmfn's componentize-py (same pin); installed into the cache if wasmfn has none."""
        version = componentize_py_version(self.ws.repo)
        project = wasmfn_home() / "toolchain" / f"componentize-py-{version}"
        if (project / ".complete").exists() and (project / "bin" / "componentize-py").exists():
            return project / "bin" / "componentize-py", version
        own = self.ws.cache / f"componentize-py-{version}"
        requirements = own.with_suffix(".requirements.txt")
        requirements.parent.mkdir(parents=True, exist_ok=True)
        requirements.write_text(f"componentize-py=={version}\n")
        ensure_venv(own, requirements, self, "wasmtime-serve: componentize-py")
        return own / "bin" / "componentize-py", version

    def launch(self, port: int) -> Launch:
        argv = [
            str(self.wasmtime), "serve",
            "--addr", f"127.0.0.1:{port}",
            "-S", "cli=y",
            "--allow-precompiled",
            *self.extra_args,
            str(self.cwasm),
        ]
        self.info["command"] = shlex.join(argv)
        return Launch(argv)

    def request(self, valid_for_s: float = 0) -> Request:
        return Request("GET", "/")


class ProductionCPython(System):
    """The same function in CPython behind a production server with 2 worker processes (one per
    core), no isolation: benches/peers/cpython_server/app.py."""

    server = ""
    workers = 2

    def prepare(self) -> None:
        peer = self.ws.benches / "peers" / "cpython_server"
        requirements = peer / "requirements.txt"
        pinned = re.search(rf"^{self.server}==(\S+)", requirements.read_text(), re.MULTILINE)
        if pinned is None:
            raise SetupError(f"{self.name}: no `{self.server}==` pin in {requirements}")
        venv = self.ws.cache / f"cpython-server-{tree_sha256(requirements)}"
        self.python = ensure_venv(venv, requirements, self, self.name)
        self.peer = peer
        self.info = {
            "version": pinned.group(1),
            "python": output_of([str(self.python), "--version"]),
            "sdk": "wasmfn's ixoncdkingress compatibility package (guest-python/), the same "
                   "Python code the wasmfn bundle runs",
            "isolation": "none: calls share each worker's interpreter",
        }

    def env(self) -> dict[str, str]:
        return {
            "BENCH_MODULE_DIR": str(self.ws.hello_world),
            "BENCH_SDK_DIR": str(self.ws.repo / "guest-python"),
            "BENCH_ENTRY": HELLO_ENTRY,
        }

    def argv(self, port: int) -> list[str]:
        raise NotImplementedError

    def launch(self, port: int) -> Launch:
        argv = self.argv(port)
        self.info["command"] = shlex.join(argv)
        return Launch(argv, self.env(), self.peer)

    def request(self, valid_for_s: float = 0) -> Request:
        return Request("GET", "/")


class Gunicorn(ProductionCPython):
    name = "gunicorn"
    label = "gunicorn (2 workers)"
    server = "gunicorn"
    threads = 8

    def prepare(self) -> None:
        super().prepare()
        self.info["mode"] = (f"WSGI, {self.workers} gthread workers x {self.threads} threads, "
                             "HTTP/1.1 keep-alive")

    def argv(self, port: int) -> list[str]:
        return [
            str(self.python), "-m", "gunicorn",
            "--bind", f"127.0.0.1:{port}",
            "--workers", str(self.workers),
            "--worker-class", "gthread",
            "--threads", str(self.threads),
            "--keep-alive", "30",
            "--backlog", "1024",
            "--log-level", "warning",
            "app:wsgi",
        ]


class Uvicorn(ProductionCPython):
    name = "uvicorn"
    label = "uvicorn (2 workers)"
    server = "uvicorn"

    def prepare(self) -> None:
        super().prepare()
        self.info["mode"] = (f"ASGI, {self.workers} worker processes, uvloop event loop, "
                             "httptools parser, HTTP/1.1 keep-alive")

    def argv(self, port: int) -> list[str]:
        return [
            str(self.python), "-m", "uvicorn",
            "--host", "127.0.0.1",
            "--port", str(port),
            "--workers", str(self.workers),
            "--loop", "uvloop",
            "--http", "httptools",
            "--backlog", "1024",
            "--no-access-log",
            "--log-level", "warning",
            "app:asgi",
        ]


class Spin(System):
    """Fermyon Spin serving benches/peers/spin_hello/app.py (spin-sdk), a fresh instance per
    request: the same job as wasmfn, by the other Python-on-wasmtime platform."""

    name = "spin"
    label = "Spin (fresh instance)"
    # The first start compiles the component with Cranelift inside `spin up`.
    ready_timeout_s = 300.0
    # Spin's defaults for a WASIp3 component send up to 128 requests, 16 at once, to one
    # instance; these make it one request per instance, as wasmfn and `wasmtime serve` do.
    reuse_args = ["--max-instance-reuse-count", "1", "--max-instance-concurrent-reuse-count", "1"]
    mode = ("fresh instance per request (`--max-instance-reuse-count 1 "
            "--max-instance-concurrent-reuse-count 1`)")

    @classmethod
    def available(cls, workspace: Workspace) -> bool:
        return workspace.spin_bin is not None

    def prepare(self) -> None:
        binary = self.ws.spin_bin
        if binary is None or not os.access(binary, os.X_OK):
            raise SetupError(
                f"{self.name}: no Spin binary" + (f" at {binary}" if binary else "") + "; Spin "
                "is not on any registry this suite installs from: build it from source and "
                "pass --spin-bin PATH (benches/README.md, \"Spin\")"
            )
        peer = self.ws.benches / "peers" / "spin_hello"
        requirements = peer / "requirements.txt"
        python = ensure_venv(self.ws.cache / f"spin-sdk-{tree_sha256(requirements)}",
                             requirements, self, f"{self.name}: spin-sdk")
        site = next(python.parent.parent.glob("lib/python3*/site-packages"), None)
        if site is None:
            raise SetupError(f"{self.name}: no site-packages in {python.parent.parent}")
        world = re.search(r"-w (\S+) componentize", (peer / "app.py").read_text())
        if world is None:
            raise SetupError(f"{self.name}: no `-w WORLD componentize` in {peer}/app.py")
        # The app folder `spin up` runs in: spin.toml, the component, Spin's own state.
        self.app = self.ws.cache / "spin-hello"
        # What the component is built from (not the folder: the build leaves a __pycache__ there).
        key = tree_sha256(peer / "app.py", requirements)
        component = self.app / "app.wasm"
        stamp = self.app / ".source.sha256"
        if not (component.exists() and stamp.exists() and stamp.read_text() == key):
            shutil.rmtree(self.app, ignore_errors=True)
            self.app.mkdir(parents=True)
            self.run_step(
                [str(python.parent / "componentize-py"), "-w", world.group(1), "componentize",
                 "-p", str(peer), "-p", str(site), "app", "-o", str(component)],
                f"{self.name}: componentize-py build of peers/spin_hello/app.py",
                f"{self.name}-setup.log",
            )
            stamp.write_text(key)
        shutil.copyfile(peer / "spin.toml", self.app / "spin.toml")
        pins = dict(re.findall(r"^([\w-]+)==(\S+)", requirements.read_text(), re.MULTILINE))
        self.info = {
            "version": output_of([str(binary), "--version"]),
            "binary": str(binary),
            "binary_sha256": tree_sha256(binary),
            "componentize_py": pins.get("componentize-py", "?"),
            "spin_sdk": pins.get("spin-sdk", "?"),
            "world": world.group(1),
            "component_mb": round(component.stat().st_size / 1e6, 1),
            "mode": self.mode,
        }

    def launch(self, port: int) -> Launch:
        argv = [
            str(self.ws.spin_bin), "up",
            "--from", str(self.app / "spin.toml"),
            "--listen", f"127.0.0.1:{port}",
            *self.reuse_args,
        ]
        self.info["command"] = shlex.join(argv)
        # Spin keeps its state (key-value store, logs) under the app's `.spin` folder.
        return Launch(argv, cwd=self.app)

    def request(self, valid_for_s: float = 0) -> Request:
        return Request("GET", "/")


class SpinReuse(Spin):
    """Spin with its own defaults for a WASIp3 component: instances are reused (up to 128
    requests, 16 at once), so requests share state; not the job wasmfn does, shown for scale."""

    name = "spin-reuse"
    label = "Spin (instances reused)"
    reuse_args: list[str] = []
    mode = ("Spin's defaults for a WASIp3 component: up to 128 requests per instance, 16 at once "
            "(requests share an instance's state)")


ALL_SYSTEMS = (Wasmfn, Ixoncdkingress, Gunicorn, Uvicorn, ProcessPerCall, WasmtimeServe, Spin,
               SpinReuse)
