"""Entries run by cron triggers (see function.toml); HTTP can call them too."""

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def heartbeat(context: FunctionContext):
    request = context.request
    # A cron run is a POST to / with the trigger's name and the tick's scheduled time.
    trigger = request.headers.get("x-cron-trigger")
    scheduled = request.headers.get("x-scheduled-time")
    print(f"heartbeat: trigger={request.trigger} name={trigger} scheduled={scheduled}")
    return {"trigger": request.trigger, "cron_trigger": trigger, "scheduled_time": scheduled}


@FunctionContext.expose
def weekly_report(context: FunctionContext):
    scheduled = context.request.headers.get("x-scheduled-time")
    report = {
        "title": context.config.get("title", "Report"),
        # The scheduled time, not the time the run happened to start: stable for the week.
        "week_of": scheduled[:10] if scheduled else None,
    }
    print(f"weekly report: {report}")
    return report
