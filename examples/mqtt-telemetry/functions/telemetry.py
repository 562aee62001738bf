"""An entry run by an MQTT trigger (see function.toml): one temperature reading per message."""

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def telemetry(context: FunctionContext, celsius=None):
    request = context.request
    # A JSON-object payload such as {"celsius": 93} arrives as keyword arguments. A bare
    # number such as 93 is not an object, so it gives none: read it from the body.
    if celsius is None:
        try:
            celsius = float(request.text)
        except ValueError:
            raise ValueError('no reading: publish {"celsius": <number>} or a number') from None
    celsius = float(celsius)
    # The topic is wasmfn-example/<device>/telemetry: the device is the middle level.
    topic = request.topic
    levels = topic.split("/") if topic else []
    device = levels[1] if len(levels) > 1 else None
    # [config] values are strings.
    max_celsius = float(context.config.get("max_celsius", "80"))
    summary = {
        "device": device,
        "topic": topic,
        "celsius": celsius,
        "max_celsius": max_celsius,
        "too_hot": celsius > max_celsius,
    }
    print(f"telemetry: {summary}")
    return summary
