"""Plots of the HTTP benchmark (matplotlib, pinned in benches/requirements.txt).

http_throughput.png: req/s against concurrent connections, one line per system (both axes
logarithmic: the systems differ by orders of magnitude). http_latency.png: p50/p90/p99 per
system at 1 and 16 connections, grouped bars on a logarithmic axis.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from load import error_count  # noqa: E402

LATENCY_CONNECTIONS = (1, 16)
PERCENTILES = ("p50", "p90", "p99")
MARKERS = "osD^v<>"


def subtitle(results: dict) -> str:
    machine = results["machine"]
    return (f"{machine['cpu']}, {machine['nproc']} cores; {results['versions']['wrk']}; "
            f"{results['settings']['duration_s']} s per run; {results['date'][:10]}")


def plain_number(value: float, _position: int) -> str:
    return f"{value:,.0f}" if value >= 1 else f"{value:g}"


def bar_value(millis: float) -> str:
    if not millis:
        return ""
    return f"{millis:,.0f}" if millis >= 100 else f"{millis:.3g}"


def plot_throughput(results: dict, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(8, 5), layout="constrained")
    for index, entry in enumerate(results["systems"]):
        runs = sorted(entry.get("runs", []), key=lambda run: run["connections"])
        if entry["status"] != "ok" or not runs:
            axes.plot([], [], label=f"{entry['label']} (failed)", color="lightgray")
            continue
        x = [run["connections"] for run in runs]
        y = [run["requests_per_s"] for run in runs]
        line, = axes.plot(x, y, marker=MARKERS[index % len(MARKERS)], label=entry["label"])
        for run in runs:
            if error_count(run):
                axes.annotate(f"{error_count(run)} errors", (run["connections"],
                              run["requests_per_s"]), textcoords="offset points",
                              xytext=(4, 6), fontsize=7, color=line.get_color())
    connections = results["settings"]["connections"]
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(connections, [str(c) for c in connections])
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.yaxis.set_major_formatter(FuncFormatter(plain_number))
    axes.set_xlabel("concurrent connections (log)")
    axes.set_ylabel("requests per second (log)")
    axes.set_title("HTTP hello world: throughput\n" + subtitle(results), fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_latency(results: dict, path: Path) -> Path:
    systems = results["systems"]
    figure, all_axes = plt.subplots(1, len(LATENCY_CONNECTIONS), figsize=(11, 5),
                                    layout="constrained", sharey=True)
    width = 0.8 / len(PERCENTILES)
    for axes, connections in zip(all_axes, LATENCY_CONNECTIONS):
        for offset, percentile in enumerate(PERCENTILES):
            heights = []
            for entry in systems:
                run = next((r for r in entry.get("runs", []) if r["connections"] == connections),
                           None)
                heights.append(run["latency_ms"][percentile] if run else 0)
            positions = [i + (offset - (len(PERCENTILES) - 1) / 2) * width
                         for i in range(len(systems))]
            bars = axes.bar(positions, heights, width, label=percentile)
            axes.bar_label(bars, labels=[bar_value(h) for h in heights], fontsize=6, padding=1)
        for index, entry in enumerate(systems):
            if not any(r["connections"] == connections for r in entry.get("runs", [])):
                # x in data units (the system's slot), y in axes units (near the bottom).
                axes.text(index, 0.03, "failed" if entry["status"] != "ok" else "no run",
                          ha="center", fontsize=8, color="gray",
                          transform=axes.get_xaxis_transform())
        axes.set_xticks(range(len(systems)), [entry["label"] for entry in systems],
                        rotation=15, ha="right", fontsize=8)
        axes.set_yscale("log")
        axes.yaxis.set_major_formatter(FuncFormatter(plain_number))
        axes.set_title(f"{connections} connection{'s' if connections > 1 else ''}")
        axes.grid(True, axis="y", which="both", alpha=0.3)
    all_axes[0].set_ylabel("latency, ms (log)")
    all_axes[0].legend()
    figure.suptitle("HTTP hello world: latency p50 / p90 / p99\n" + subtitle(results),
                    fontsize=10)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
