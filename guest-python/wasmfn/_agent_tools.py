"""The entries ixoncdkingress 1.0 answers itself: ``list-agent-tools``, ``list-agent-tools-issues``
and ``app-description``, recognised by the last part of the name (``x.list-agent-tools`` too).

The SDK imports every module of the app to answer them; wasmfn did that at build time, so the
answers come from the modules in the snapshot and the import issues recorded then.

Pure Python with no WIT imports, so it runs (and is unit-tested) under any CPython.
"""

from types import ModuleType
from typing import Any

from ixoncdkingress.types import AppDescription, Tool
from wasmfn._modules import ImportIssue

RESERVED = ("list-agent-tools", "list-agent-tools-issues", "app-description")


class AgentTools:
    """The app's agent tools and description, found in its imported modules."""

    def __init__(self, modules: dict[str, ModuleType], issues: list[ImportIssue]) -> None:
        self.issues = [issue.as_sdk_issue() for issue in issues]
        self.tools: list[Tool] = []
        for name in sorted(modules):
            module = modules[name]
            # The SDK walks the modules inside CBC_PATH; the `functions` package itself is not one.
            if name == "functions" and hasattr(module, "__path__"):
                continue
            for value in vars(module).values():
                tool = getattr(value, "tool_definition", None)
                if callable(value) and getattr(value, "exposed_to_agent", False) and isinstance(tool, Tool):
                    tool.module_name = name
                    self.tools.append(tool)

    def answer(self, entry: str) -> dict[str, Any] | None:
        """The answer to a reserved entry, or None for any other name."""
        last = entry.rpartition(".")[2]
        if last not in RESERVED:
            return None
        if last == "list-agent-tools":
            ready = sorted((t for t in self.tools if t.is_ready), key=lambda t: t.name)
            return {"result": "success", "data": [t.to_dict() for t in ready]}
        if last == "list-agent-tools-issues":
            not_ready = [t.to_dict() for t in self.tools if not t.is_ready]
            return {"result": "success", "data": self.issues + not_ready}
        described = AppDescription._instance
        return {
            "result": "success",
            "data": {
                "description": described.description if described else None,
                "shortName": described.short_name if described else None,
            },
        }
