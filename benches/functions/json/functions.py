"""benches/json: each call gets a ~100 KB JSON document (a list of readings, as a device
history export is) and answers one of the same size: every reading with a derived field, plus
totals per device. The same file runs in wasmfn, ixoncdkingress and the CPython servers."""

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def summarise(context: FunctionContext, readings: list = (), **kwargs):
    totals: dict[str, dict] = {}
    marked = []
    for reading in readings:
        device = totals.setdefault(reading["device"], {"count": 0, "sum": 0.0, "max": None})
        value = reading["value"]
        device["count"] += 1
        device["sum"] += value
        device["max"] = value if device["max"] is None else max(device["max"], value)
        marked.append({**reading, "alarm": value > 90.0})
    return {"readings": marked, "devices": totals}
