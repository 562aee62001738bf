"""{{name}}: entries run by a cron and an MQTT trigger (see function.toml).

HTTP can call both too:

    curl http://127.0.0.1:8080/spaces/default/functions/{{name}}:{{module}}.tick/invoke
    mosquitto_pub -t {{name}}/device-1/events -m '{"level": 3}'
"""

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def tick(context: FunctionContext, **kwargs):
    """A cron run: a POST to / with the trigger's name and the tick's scheduled time."""
    headers = context.request.headers
    run = {
        "trigger": context.request.trigger,
        "cron_trigger": headers.get("x-cron-trigger"),
        "scheduled_time": headers.get("x-scheduled-time"),
    }
    print(f"tick: {run}")
    return run


@FunctionContext.expose
def on_message(context: FunctionContext, **kwargs):
    """An MQTT message: a JSON-object payload arrives as keyword arguments, the topic in
    `context.request.topic` (None when called over HTTP)."""
    topic = context.request.topic
    levels = topic.split("/") if topic else []
    message = {"device": levels[1] if len(levels) > 2 else None, "topic": topic, "fields": kwargs}
    print(f"message: {message}")
    return message
