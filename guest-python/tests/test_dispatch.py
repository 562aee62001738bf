"""Unit tests of the guest's pure-Python dispatch (run with the host's CPython)."""

import functools
import json
import sys
import types
import unittest

from ixoncdkingress.function.context import FunctionContext, FunctionResource
from wasmfn import Response, _dispatch
from wasmfn._http import Request


def _module(name, **functions):
    module = types.ModuleType(name)
    for attr, value in functions.items():
        setattr(module, attr, value)
    sys.modules[name] = module
    return module


@FunctionContext.expose
def with_kwargs(context, **kwargs):
    return kwargs


@FunctionContext.expose
def with_named(context, name, greeting="Hello"):
    return f"{greeting}, {name}"


def not_exposed(context):
    return "hidden"


def _with_client(function):
    @functools.wraps(function)
    def wrapper(context, /, *args, **kwargs):
        return function(context, "a client", *args, **kwargs)

    return wrapper


@FunctionContext.expose
@_with_client
def with_injected(context, client, name):
    return f"{client} for {name}"


_module("functions", with_kwargs=with_kwargs)
_module("pkg.mod", with_named=with_named, not_exposed=not_exposed)


class DispatchTest(unittest.TestCase):
    def setUp(self):
        self.exposed = _dispatch.collect_exposed(["functions", "pkg.mod"])

    def test_only_exposed_functions_are_collected(self):
        self.assertEqual(sorted(self.exposed), ["functions.with_kwargs", "pkg.mod.with_named"])

    def test_bare_names_mean_module_functions(self):
        self.assertEqual(_dispatch.parse_function_location("f"), ("functions", "f"))
        self.assertEqual(_dispatch.parse_function_location("a.b.f"), ("a.b", "f"))
        self.assertIs(_dispatch.resolve(self.exposed, "with_kwargs"), with_kwargs)
        with self.assertRaises(_dispatch.NotFound):
            _dispatch.resolve(self.exposed, "pkg.mod.not_exposed")

    def test_unknown_arguments_are_dropped_unless_kwargs(self):
        self.assertEqual(
            _dispatch.select_arguments(with_named, {"name": "Ada", "x": 1}), {"name": "Ada"}
        )
        self.assertEqual(_dispatch.select_arguments(with_kwargs, {"x": 1}), {"x": 1})

    def test_an_argument_named_like_the_context_is_dropped(self):
        self.assertEqual(_dispatch.select_arguments(with_kwargs, {"context": 1, "x": 2}), {"x": 2})
        self.assertEqual(
            _dispatch.select_arguments(with_named, {"context": 1, "name": "Ada"}), {"name": "Ada"}
        )

    def test_missing_required_arguments_are_reported(self):
        with self.assertRaisesRegex(_dispatch.BadArguments, "'name'"):
            _dispatch.select_arguments(with_named, {"greeting": "Hi"})

    def test_a_decorator_may_fill_in_parameters_of_the_function_it_wraps(self):
        # As the SDK: arguments filtered by the wrapped signature, none reported missing.
        self.assertEqual(
            _dispatch.select_arguments(with_injected, {"name": "Ada", "x": 1}), {"name": "Ada"}
        )
        self.assertEqual(_dispatch.select_arguments(with_injected, {}), {})
        with self.assertRaises(TypeError):
            with_injected(None, **_dispatch.select_arguments(with_injected, {}))

    def test_arguments_must_be_a_json_object(self):
        with self.assertRaisesRegex(_dispatch.BadArguments, "JSON object"):
            _dispatch.decode_arguments("[1]")
        with self.assertRaisesRegex(_dispatch.BadArguments, "not valid JSON"):
            _dispatch.decode_arguments("{")

    def test_call_renders_json_and_responses(self):
        response = _dispatch.call(self.exposed, "pkg.mod.with_named", '{"name": "Ada"}', None)
        self.assertEqual(response.status, 200)
        self.assertEqual(json.loads(response.body), "Hello, Ada")
        custom = _dispatch.render(Response({"a": 1}, status=201, headers={"x-a": "b"}))
        self.assertEqual(custom.status, 201)
        self.assertIn(("content-type", "application/json"), custom.headers)
        with self.assertRaisesRegex(TypeError, "JSON-serialisable"):
            _dispatch.render(object())

    def test_return_values_encode_exactly_as_json_dumps(self):
        values = [
            {"message": "Hello World"}, [1, 2.5, None, True], "caf\u00e9 \u2603", 3, 1e300,
            {"nested": {"a": [{"b": ()}]}, "n\u00e4me": -0.0}, [], {}, float("nan"),
            {1: "int key", None: "null key"},
        ]
        for value in values:
            self.assertEqual(_dispatch.to_json(value), json.dumps(value))
            rendered = _dispatch.render(value)
            self.assertEqual(rendered.body, json.dumps(value).encode("utf-8"))
            self.assertEqual(
                (rendered.status, rendered.headers), (200, [("content-type", "application/json")])
            )

    def test_bodies_over_the_limit_are_refused_with_the_size_they_reached(self):
        text = "caf\u00e9" * 10  # JSON escapes the accent: 15 bytes per "caf\u00e9"
        exact = len(json.dumps(text))
        self.assertEqual(_dispatch.render(text, exact).body, json.dumps(text).encode("utf-8"))
        with self.assertRaises(_dispatch.ResponseTooLarge) as refused:
            _dispatch.render(text, exact - 1)
        self.assertEqual(refused.exception.size, exact)
        # A string whose characters alone pass the limit is refused before it is encoded.
        with self.assertRaises(_dispatch.ResponseTooLarge) as refused:
            _dispatch.render("x" * 100, 50)
        self.assertEqual(refused.exception.size, 102)
        value = {"items": list(range(100))}
        with self.assertRaises(_dispatch.ResponseTooLarge) as refused:
            _dispatch.render(value, 100)
        self.assertEqual(refused.exception.size, len(json.dumps(value)))
        with self.assertRaises(_dispatch.ResponseTooLarge) as refused:
            _dispatch.render(Response(b"y" * 10), 9)
        self.assertEqual(refused.exception.size, 10)
        self.assertEqual(_dispatch.render(Response(b"y" * 10), 10).body, b"y" * 10)

    def test_unencodable_values_fail_clearly_and_leave_the_encoder_usable(self):
        circular = []
        circular.append(circular)
        with self.assertRaisesRegex(TypeError, "JSON-serialisable.*[Cc]ircular"):
            _dispatch.render(circular)
        with self.assertRaisesRegex(TypeError, "JSON-serialisable.*set"):
            _dispatch.render({"a": {1, 2}})
        # A failure part-way leaves nothing behind: the same list encodes once it is acyclic.
        shared = [1]
        self.assertEqual(_dispatch.to_json([shared, shared]), "[[1], [1]]")

    def test_no_arguments_decode_to_an_empty_dict(self):
        for text in ("", "{}"):
            self.assertEqual(_dispatch.decode_arguments(text), {})
        self.assertEqual(_dispatch.decode_arguments(' { } '), {})

    def test_qualified_and_bare_entries_resolve_alike(self):
        self.assertIs(_dispatch.resolve(self.exposed, "functions.with_kwargs"), with_kwargs)
        self.assertIs(_dispatch.resolve(self.exposed, "with_kwargs"), with_kwargs)
        self.assertIs(_dispatch.resolve(self.exposed, "pkg.mod.with_named"), with_named)
        with self.assertRaises(_dispatch.NotFound):
            _dispatch.resolve(self.exposed, "with_named")

    def test_exceptions_are_described_with_a_traceback(self):
        try:
            raise ValueError("boom")
        except ValueError as error:
            described = _dispatch.describe(error)
        self.assertEqual((described.type_name, described.message), ("ValueError", "boom"))
        self.assertIn("Traceback (most recent call last)", described.traceback)


    def test_missing_modules_get_a_hint(self):
        try:
            import wasmfn_no_such_module  # noqa: F401
        except ModuleNotFoundError as error:
            described = _dispatch.describe(error)
        self.assertIn("add the package that provides it to requirements.txt", described.message)

    def test_preload_reports_what_failed(self):
        self.assertEqual(_dispatch.preload(["json", "wasmfn_no_such_module"]), ["wasmfn_no_such_module"])


class ContextTest(unittest.TestCase):
    def test_expose_with_and_without_arguments(self):
        from ixoncdkingress import schema_utils

        saved, schema_utils.pydantic = schema_utils.pydantic, None  # as in a bundle without it
        self.addCleanup(setattr, schema_utils, "pydantic", saved)

        @FunctionContext.expose(is_agentic=True, description="d", examples=["agentic(x=2)"])
        def agentic(context, x: int = 1):
            return x

        @FunctionContext.expose()
        def plain(context, x: int = 1):
            return x

        self.assertTrue(agentic.exposed and plain.exposed)
        self.assertTrue(agentic.exposed_to_agent)
        self.assertFalse(hasattr(plain, "tool_definition"), "options without is_agentic are ignored")
        definition = agentic.tool_definition.to_dict()
        self.assertEqual(definition["description"], "d\nexamples:\nagentic(x=2)")
        self.assertEqual(
            definition["inputSchema"],
            {"properties": {"x": {"default": 1, "title": "X", "type": "integer"}}, "type": "object"},
        )
        self.assertIsNone(definition["outputSchema"])

    def test_first_parameter_must_be_the_context(self):
        with self.assertRaises(Exception):

            @FunctionContext.expose
            def no_context():
                return 1

    def test_agent_or_asset_prefers_the_asset(self):
        agent = FunctionResource("ag", "Agent", {}, set())
        asset = FunctionResource("as", "Asset", {}, set())
        self.assertIs(FunctionContext({}, agent=agent, asset=asset).agent_or_asset, asset)
        self.assertIs(FunctionContext({}, agent=agent).agent_or_asset, agent)

    def test_request_helpers(self):
        request = Request("POST", "/a", [("q", "1"), ("q", "2")], [("X-Topic", "t/1")], b'{"a": 1}', "mqtt")
        self.assertEqual(request.args, {"q": "1"})
        self.assertEqual(request.headers["x-topic"], "t/1")
        self.assertIs(request.headers, request.headers, "made once, when first read")
        self.assertEqual(request.headers.items(), [("x-topic", "t/1")])
        self.assertEqual(request.topic, "t/1")
        self.assertEqual(request.json(), {"a": 1})

    def test_response_rejects_invalid_status(self):
        with self.assertRaises(ValueError):
            Response("x", status=42)


if __name__ == "__main__":
    unittest.main()
