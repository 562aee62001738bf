"""Markdown of the HTTP benchmark's results (benches/out/http.md), ready for RESULTS.md.

Every peer is shown next to wasmfn as a ratio, peer ÷ wasmfn at the same concurrency: above 1
means more requests per second (better) or longer latency (worse). A system whose set-up
failed keeps its row, with the reason; a run with errors shows their count.
"""

from load import error_count

BASELINE = "wasmfn"
# Cores used by processes other than the server and wrk above which a run is called disturbed.
OTHER_CORES_WARNING = 0.2


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def millis(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}×"


def runs_by_connections(entry: dict) -> dict[int, dict]:
    return {run["connections"]: run for run in entry.get("runs", [])}


def failure(entry: dict) -> str:
    return "failed: " + cell_text(entry.get("error", "unknown error"))


def cell_text(text: str) -> str:
    """The first line of a message, safe inside a markdown table cell."""
    return (text.splitlines() or [""])[0].replace("|", "\\|")


def describe_errors(run: dict) -> str:
    parts = []
    if run["non_2xx"]:
        parts.append(f"{run['non_2xx']} non-2xx")
    parts += [f"{count} {kind}" for kind, count in run["socket_errors"].items() if count]
    return ", ".join(parts) or "0"


def write_markdown(results: dict) -> str:
    machine = results["machine"]
    settings = results["settings"]
    systems = results["systems"]
    connections = settings["connections"]
    base = next((s for s in systems if s["name"] == BASELINE and s["status"] == "ok"), None)
    base_runs = runs_by_connections(base) if base else {}
    lines = [
        "## HTTP hello world: wasmfn and its peers (`benches/run.sh`)",
        "",
        f"Machine: {machine['cpu']}, nproc {machine['nproc']}, {machine['memory_gib']} GiB, "
        f"{machine['os']}, kernel {machine['kernel']}; load average at start "
        f"{' / '.join(map(str, machine['load_average_at_start']))}. Date: {results['date']}.",
        f"Load generator: {results['versions']['wrk']}, `wrk -t min(c,2) -c c "
        f"-d {settings['duration_s']}s --latency --timeout {settings['wrk_timeout']}`, "
        f"{settings['warmup_s']} s warm-up before each run; one system at a time, all on "
        "127.0.0.1.",
        f"Function: {results['function']}.",
        f"Command: `{results['command']}`"
        + (f" (wall time {results['wall_time_s']:.0f} s)." if "wall_time_s" in results else "."),
        "",
        "### Systems",
        "",
        "| system | version | how it serves hello world |",
        "|---|---|---|",
    ]
    for entry in systems:
        config = entry.get("config", {})
        version = config.get("version", "")
        if entry["name"] == BASELINE and config.get("commit"):
            version += (f" ({config['commit']}, binary {config.get('binary_sha256', '?')[:12]} "
                        f"built {config.get('binary_built', '?')}), componentize-py "
                        f"{config.get('componentize_py')}")
        if entry["name"] == "wasmtime-serve":
            version += (f", features `{config.get('features')}`, componentize-py "
                        f"{config.get('componentize_py')}, {config.get('world')}")
        if entry["name"] in ("spin", "spin-reuse"):
            version += (f" (binary {config.get('binary_sha256', '?')[:12]}), spin-sdk "
                        f"{config.get('spin_sdk')}, componentize-py "
                        f"{config.get('componentize_py')}, {config.get('world')}")
        if entry["name"] == "process-per-call":
            version = f"CPython {config.get('python', '?')}"
        if entry["name"] == "ixoncdkingress":
            version = f"{version}, {config.get('python', '')}"
        how = "; ".join(
            str(config[key]) for key in ("mode", "wsgi_provider", "sdk", "isolation")
            if config.get(key)
        )
        extra = config.get("extra_serve_args")
        if extra:
            how += f"; extra serve args `{' '.join(extra)}`"
        if entry["status"] != "ok":
            how = f"**{failure(entry)}**" + (f"; {how}" if how else "")
        lines.append(f"| {entry['label']} | {version} | {how} |")

    lines += [
        "",
        "### One connection",
        "",
        "| system | req/s | p50 ms | p90 ms | p99 ms | req/s ÷ wasmfn | p50 ÷ wasmfn |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in systems:
        run = runs_by_connections(entry).get(1)
        if run is None:
            reason = failure(entry) if entry["status"] != "ok" else "no run at 1 connection"
            lines.append(f"| {entry['label']} | {reason} | | | | | |")
            continue
        latency = run["latency_ms"]
        base_run = base_runs.get(1)
        flag = " ⚠" if error_count(run) else ""
        lines.append(
            f"| {entry['label']} | {rate(run['requests_per_s'])}{flag} | {millis(latency['p50'])} "
            f"| {millis(latency['p90'])} | {millis(latency['p99'])} "
            f"| {ratio(run['requests_per_s'], base_run and base_run['requests_per_s'])} "
            f"| {ratio(latency['p50'], base_run and base_run['latency_ms']['p50'])} |"
        )

    header = "| system | " + " | ".join(f"{c} conn." for c in connections) + " |"
    rule = "|---|" + "---:|" * len(connections)
    lines += ["", "### Throughput, req/s (÷ wasmfn)", "", header, rule]
    for entry in systems:
        lines.append(table_row(entry, connections, base_runs, throughput_cell))
    lines += ["", "### Latency p50 / p99, ms (÷ wasmfn)", "", header, rule]
    for entry in systems:
        lines.append(table_row(entry, connections, base_runs, latency_cell))
    lines += ["", "### Errors: non-2xx responses and socket errors (wrk)", "", header, rule]
    for entry in systems:
        lines.append(table_row(entry, connections, base_runs,
                               lambda run, _base: describe_errors(run)))

    lines += ["", "### Cores busy during the run: server / wrk / everything else", "",
              header, rule]
    for entry in systems:
        lines.append(table_row(entry, connections, base_runs, cores_cell))
    disturbed = sorted({
        entry["label"] for entry in systems for run in entry.get("runs", [])
        if run.get("cpu_cores", {}).get("other", 0) > OTHER_CORES_WARNING
    })
    if disturbed:
        lines += ["", f"**Other processes kept more than {OTHER_CORES_WARNING} of a core busy "
                  f"during runs of: {', '.join(disturbed)}.** Those numbers understate what the "
                  "system does on a quiet machine."]

    lines += [
        "",
        "Ratios are peer ÷ wasmfn at the same concurrency: for req/s above 1× means the peer "
        "is faster, for latency above 1× means it is slower. ⚠ marks runs with errors (see "
        "the errors table). Raw numbers, wrk's own output and every command: "
        "`benches/out/http.json`; server logs: `benches/out/logs/`. Plots: "
        "`benches/plots/http_throughput.png`, `benches/plots/http_latency.png`.",
        "",
    ]
    return "\n".join(lines)


def table_row(entry: dict, connections: list[int], base_runs: dict, cell) -> str:
    if entry["status"] != "ok":
        return f"| {entry['label']} | {failure(entry)} |" + " |" * (len(connections) - 1)
    runs = runs_by_connections(entry)
    failed = {f["connections"]: f["error"] for f in entry.get("failed_runs", [])}
    cells = []
    for c in connections:
        if c in runs:
            cells.append(cell(runs[c], base_runs.get(c)))
        else:
            cells.append("failed: " + cell_text(failed.get(c, "not run")))
    return f"| {entry['label']} | " + " | ".join(cells) + " |"


def throughput_cell(run: dict, base: dict | None) -> str:
    flag = " ⚠" if error_count(run) else ""
    return (f"{rate(run['requests_per_s'])}{flag} "
            f"({ratio(run['requests_per_s'], base and base['requests_per_s'])})")


def latency_cell(run: dict, base: dict | None) -> str:
    latency = run["latency_ms"]
    base_latency = base["latency_ms"] if base else {}
    return (f"{millis(latency['p50'])} / {millis(latency['p99'])} "
            f"({ratio(latency['p50'], base_latency.get('p50'))} / "
            f"{ratio(latency['p99'], base_latency.get('p99'))})")


def cores_cell(run: dict, _base: dict | None) -> str:
    cores = run.get("cpu_cores")
    if not cores:
        return "?"
    return f"{cores['server']:.2f} / {cores['wrk']:.2f} / {cores['other']:.2f}"
