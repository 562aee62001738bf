"""Calls the IXON API on the caller's behalf (context.api_client, as in ixoncdkingress): the
host adds the caller's access token and company; the function never sees the token."""

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def list_agents(context: FunctionContext, **kwargs):
    """The names of the caller's company's agents."""
    response = context.api_client.get("AgentList", query={"fields": "publicId,name"})
    if response.get("status") != "success":
        return {"error": response}
    return {"agents": sorted(agent["name"] for agent in response["data"])}


@FunctionContext.expose
def rename_agent(context: FunctionContext, agent_id: str, name: str, **kwargs):
    """Not in the allowlist: the host refuses it before any request leaves."""
    return context.api_client.patch("Agent", data={"name": name}, url_args={"publicId": agent_id})
