"""IXON-compatible FunctionContext (names and behaviour of ixoncdkingress 1.0.0's).

The real package needs pymongo, requests and docker, which cannot run inside a WebAssembly
component; this one is backed by wasmfn's host interfaces instead: ``api_client`` is an
``ApiClient`` whose requests the host sends (adding the caller's credentials),
``document_db_client`` a ``DocumentDBClient`` on the host's document store, and
``object_storage`` (a wasmfn extension, absent from IXON's SDK) an ``ObjectStorageClient`` for
the space's objects; each is None when the context was made without it. wasmfn has no time
series store: ``time_series_client`` is always None. ``request`` (also a wasmfn extension) is
the HTTP-like request that triggered the call. ``expose`` takes the SDK 1.0 options; agent-tool
schemas come from pydantic when the bundle has it, otherwise from wasmfn's own schema writer
(``ixoncdkingress.schema_utils``).
"""

import textwrap
import warnings
from collections.abc import Callable
from inspect import _empty, signature
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ixoncdkingress.types import Tool
    from ixoncdkingress.function.api_client import ApiClient
    from ixoncdkingress.function.document_db_client import DocumentDBClient
    from wasmfn.objects import ObjectStorageClient


class FunctionResource:
    """Describes an IXAPI resource."""

    public_id: str
    name: str
    custom_properties: dict[str, Any]
    permissions: set[str] | None

    def __init__(
        self,
        public_id: str,
        name: str,
        custom_properties: dict[str, Any],
        permissions: set[str] | None,
    ) -> None:
        self.public_id = public_id
        self.name = name
        self.custom_properties = custom_properties
        self.permissions = permissions

    def __repr__(self) -> str:
        return (
            "<FunctionResource"
            f" public_id={self.public_id},"
            f" name={self.name},"
            f" custom_properties={self.custom_properties!r},"
            f" permissions={self.permissions!r},"
            f">"
        )


class FunctionContext:
    """The context for a Cloud Function."""

    config: dict[str, str]
    api_client: "ApiClient | None"
    object_storage: "ObjectStorageClient | None"
    user: FunctionResource | None
    company: FunctionResource | None
    asset: FunctionResource | None
    agent: FunctionResource | None
    template: FunctionResource | None

    def __init__(
        self,
        config: dict[str, str],
        api_client: Any = None,
        user: FunctionResource | None = None,
        company: FunctionResource | None = None,
        asset: FunctionResource | None = None,
        agent: FunctionResource | None = None,
        template: FunctionResource | None = None,
        request: Any = None,
        *,
        document_db_client: "DocumentDBClient | None" = None,
        object_storage: "ObjectStorageClient | None" = None,
    ) -> None:
        self.config = config
        self.api_client = api_client
        self.user = user
        self.company = company
        self.asset = asset
        self.agent = agent
        self.template = template
        # wasmfn extension: the HTTP-like request (method, path, query, headers, body, trigger).
        self.request = request
        # wasmfn extension: the space's object storage.
        self.object_storage = object_storage
        self._document_db_client = document_db_client

    @property
    def document_db_client(self) -> "DocumentDBClient | None":
        """The client for the function's Document DB collection.

        None when the context has no document store (the real SDK returns None when running
        in development mode without a company).
        """
        return self._document_db_client

    @property
    def time_series_client(self) -> None:
        """The client for the function's time series collection: always None in wasmfn, which
        has no time series store (the real SDK returns None when it has no database).

        WARNING: This function and client is experimental and may change in the future.
        """
        warnings.warn(
            "The TimeSeriesClient is experimental and may change in the future",
            category=FutureWarning,
        )
        return None

    @property
    def agent_or_asset(self) -> FunctionResource:
        """The Asset resource if the context has one, otherwise the Agent resource."""
        if self.asset:
            return self.asset

        assert self.agent
        return self.agent

    def __repr__(self) -> str:
        return (
            f"<FunctionContext"
            f" config={self.config!r},"
            f" api_client={self.api_client!r},"
            f" document_db_client={self.document_db_client!r},"
            f" user={self.user!r},"
            f" company={self.company!r},"
            f" asset={self.asset!r},"
            f" agent={self.agent!r},"
            f" template={self.template!r},"
            f">"
        )

    @staticmethod
    def expose_cloud_function(function: Any) -> Any:
        """Decorator to mark a function as an exposed endpoint."""
        sig = signature(function, eval_str=True)

        if not sig.parameters:
            raise Exception("Function has no argument for FunctionContext")

        context_param = sig.parameters[next(iter(sig.parameters))]
        if (
            context_param.annotation is not _empty
            and context_param.annotation is not FunctionContext
        ):
            raise Exception("First function parameter should be of type FunctionContext")

        function.exposed = True
        return function

    @staticmethod
    def expose(
        function: Callable[..., Any] | None = None,
        *,
        is_agentic: bool = False,
        requires_human_permission: bool = False,
        description: str | None = None,
        examples: list[str] | None = None,
        input_schema: dict[str, Any] | None = None,
        output_schema: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        exclude_param_types: set[type] | None = None,
        exclude_param_names: set[str] | None = None,
    ) -> Any:
        """Mark a function as exposed, with or without options, as ixoncdkingress 1.0 does.

        Without ``is_agentic`` the options are ignored. With it, the function becomes an agent
        tool: ``tool_definition`` (a ``Tool``), ``exposed_to_agent``, and ``input_model`` /
        ``output_model`` (pydantic models when pydantic is in the bundle, else None); a call's
        arguments are then validated by ``input_model``.
        """

        def decorator(inner_function: Any) -> Any:
            FunctionContext.expose_cloud_function(inner_function)
            if not is_agentic:
                return inner_function
            tool = get_tool_definition(
                inner_function,
                requires_human_permission=requires_human_permission,
                description=description,
                examples=examples,
                input_schema=input_schema,
                output_schema=output_schema,
                meta=meta,
                exclude_param_types=exclude_param_types,
                exclude_param_names=exclude_param_names,
            )
            inner_function.tool_definition = tool
            inner_function.exposed_to_agent = True
            inner_function.input_model = tool.input_model
            inner_function.output_model = tool.output_model
            return inner_function

        return decorator if function is None else decorator(function)


def get_tool_definition(
    function: Callable[..., Any],
    requires_human_permission: bool = False,
    description: str | None = None,
    examples: list[str] | None = None,
    input_schema: dict[str, Any] | None = None,
    output_schema: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    exclude_param_types: set[type] | None = None,
    exclude_param_names: set[str] | None = None,
) -> "Tool":
    """The agent tool a function is: its description (or docstring), schemas and models.

    A schema given here replaces the generated one in the listing (and drops its issue); the
    input model still comes from the signature.
    """
    from ixoncdkingress.schema_utils import generate_input_schema, generate_output_schema
    from ixoncdkingress.types import Tool

    issues = []
    text = description if description is not None else function.__doc__
    if text is not None:
        text = textwrap.dedent(text).strip(" \n")
    else:
        issues.append({
            "type": "description_missing",
            "error": "Agentic methods require description for docstrings",
        })
    # As in the SDK, the context's type is always left out (and added to the caller's set).
    if exclude_param_types is None:
        exclude_param_types = set()
    exclude_param_types.add(FunctionContext)
    generated_input = generate_input_schema(
        function, exclude_param_types=exclude_param_types, exclude_param_names=exclude_param_names
    )
    generated_output = generate_output_schema(function)
    if input_schema is None:
        input_schema = generated_input.schema
        if generated_input.issue:
            issues.append(generated_input.issue)
    if output_schema is None:
        output_schema = generated_output.schema
        if generated_output.issue:
            issues.append(generated_output.issue)
    return Tool(
        name=function.__name__,
        description=text,
        requires_human_permission=requires_human_permission,
        examples=examples,
        input_schema=input_schema,
        output_schema=output_schema,
        meta=meta,
        issues=issues,
        input_model=generated_input.model,
        output_model=generated_output.model,
    )
