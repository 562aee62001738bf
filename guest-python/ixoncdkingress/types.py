"""The names of ixoncdkingress 1.0's ``ixoncdkingress.types`` that functions import.

Apps call ``AppDescription(description=..., short_name=...)`` at module level; the reserved entry
``app-description`` answers with it. The agent-tool types describe what ``list-agent-tools``
answers. ``pydantic`` is optional here: a ``Tool``'s models are pydantic models when pydantic is
in the bundle, and None otherwise.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, TypedDict

FunctionLocation = tuple[str, str]
FunctionArguments = dict[str, str]
ObjectJsonSchema = dict[str, Any]


class ContentType(Enum):
    FORM = "application/x-www-form-urlencoded"
    HTML = "text/html"
    JSON = "application/json"


class RequestMethod(Enum):
    GET = "GET"
    POST = "POST"
    PATCH = "PATCH"
    DELETE = "DELETE"
    PUT = "PUT"
    OPTIONS = "OPTIONS"


class ResponseCode(Enum):
    OK = 200
    NO_CONTENT = 204
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    METHOD_NOT_ALLOWED = 405
    INTERNAL_ERROR = 500
    NOT_AVAILABLE = 503

    def status_line(self) -> str:
        """``"500 INTERNAL ERROR"``: the code and the name with spaces."""
        return f"{self.value} {self.name.replace('_', ' ')}"


class ModuleLoadIssue(TypedDict):
    type: str
    error: str
    module_name: str


class ToolIssue(TypedDict):
    type: str
    error: str


@dataclass(kw_only=True)
class Schema:
    """A generated JSON schema, the pydantic model it came from, or why there is none."""

    schema: ObjectJsonSchema | None = None
    model: Any = None
    issue: ToolIssue | None = None


class ToolDefinition(TypedDict):
    name: str
    description: str
    requires_human_permission: bool
    inputSchema: ObjectJsonSchema | None
    outputSchema: ObjectJsonSchema | None
    meta: dict[str, Any] | None
    issues: list[ToolIssue] | None


@dataclass(kw_only=True)
class Tool:
    """An agentic function as ``list-agent-tools`` lists it."""

    name: str
    description: str | None = None
    requires_human_permission: bool = False
    examples: list[str] | None = None
    input_schema: ObjectJsonSchema | None = None
    output_schema: ObjectJsonSchema | None = None
    meta: dict[str, Any] | None = None
    module_name: str | None = None
    issues: list[ToolIssue] | None = None
    input_model: Any = None
    output_model: Any = None

    @property
    def is_ready(self) -> bool:
        """An agent can use the tool only with a description and an input schema."""
        return self.description is not None and self.input_schema is not None

    def to_dict(self) -> ToolDefinition:
        text = self.description or ""
        if self.examples:
            listed = "examples:\n" + "\n".join(self.examples)
            text = f"{self.description}\n{listed}" if self.description else listed
        return {
            "name": f"{self.module_name}.{self.name}" if self.module_name else self.name,
            "description": text,
            "requires_human_permission": self.requires_human_permission,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "meta": self.meta,
            "issues": self.issues,
        }


class ListToolsResponse(TypedDict):
    result: Literal["success"]
    data: list[ToolDefinition]


class ListToolsIssuesResponse(TypedDict):
    result: Literal["success"]
    data: list[ToolDefinition | ModuleLoadIssue]


class AppDescriptionData(TypedDict):
    description: str | None
    shortName: str | None


class AppDescriptionResponse(TypedDict):
    result: Literal["success"]
    data: AppDescriptionData


class AppDescription:
    """The app's description: one per process, set once at module level."""

    _instance: "AppDescription | None" = None
    description: str | None
    short_name: str | None

    def __new__(cls, description: str | None = None, short_name: str | None = None) -> "AppDescription":
        existing = cls._instance
        if existing is not None:
            if (existing.description, existing.short_name) != (description, short_name):
                raise ValueError("App description already created")
            return existing
        instance = super().__new__(cls)
        instance.description = description
        instance.short_name = short_name
        cls._instance = instance
        return instance

    @classmethod
    def get(cls) -> "AppDescription":
        if cls._instance is None:
            raise ValueError("App description not set")
        return cls._instance
