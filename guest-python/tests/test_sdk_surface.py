"""The ixoncdkingress names apps import, the reserved entries and the import rounds of the build."""

import importlib
import os
import sys
import tempfile
import types
import unittest
import warnings
from typing import Literal, Optional

from ixoncdkingress import schema_utils
from ixoncdkingress.function.context import FunctionContext
from ixoncdkingress.schema_utils import generate_input_schema, generate_output_schema
from ixoncdkingress.types import AppDescription
from wasmfn import _agent_tools, _dispatch, _modules

# Every module path of ixoncdkingress 1.0 (and 0.0.x's cbc) an app can import, with a name from each.
SDK_NAMES = {
    "ixoncdkingress.types": ["AppDescription", "Tool", "ToolDefinition", "ResponseCode", "ModuleLoadIssue"],
    "ixoncdkingress.function.context": ["FunctionContext", "FunctionResource", "get_tool_definition"],
    "ixoncdkingress.function.api_client": ["ApiClient"],
    "ixoncdkingress.function.document_db_client": ["DocumentDBClient", "DocumentType", "DocumentDBAuthentication"],
    "ixoncdkingress.function.time_series_client": ["TimeSeriesClient"],
    "ixoncdkingress.function.objectstorage.types": ["ResourceType", "PathData", "PathMapping", "PathResponse", "ListPathResponse"],
    "ixoncdkingress.schema_utils": ["generate_input_schema", "generate_output_schema"],
    "ixoncdkingress.cbc.context": ["CbcContext", "CbcResource", "FunctionContext"],
    "ixoncdkingress.cbc.api_client": ["ApiClient"],
    "ixoncdkingress.cbc.document_db_client": ["DocumentDBClient", "TIMEOUT"],
    "ixoncdkingress.cbc.objectstorage.types": ["ResourceType", "PathResponse"],
}


class SdkSurfaceTest(unittest.TestCase):
    def test_every_sdk_module_path_resolves(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for module_name, names in SDK_NAMES.items():
                module = importlib.import_module(module_name)
                for name in names:
                    self.assertTrue(hasattr(module, name), f"{module_name}.{name}")
        from ixoncdkingress.cbc.context import CbcContext

        self.assertIs(CbcContext, FunctionContext)

    def test_app_description_is_set_once(self):
        AppDescription._instance = None
        self.addCleanup(setattr, AppDescription, "_instance", None)
        with self.assertRaisesRegex(ValueError, "not set"):
            AppDescription.get()
        first = AppDescription(description="Logs notes", short_name="notes")
        self.assertIs(AppDescription(description="Logs notes", short_name="notes"), first)
        with self.assertRaisesRegex(ValueError, "already created"):
            AppDescription(description="other")


def _tool_module(name):
    module = types.ModuleType(name)

    @FunctionContext.expose(is_agentic=True, requires_human_permission=True, meta={"k": 1})
    def add(context: FunctionContext, text: str, subject: Optional[str] = None, kind: Literal["a", "b"] = "a") -> dict:
        """Adds a note."""

    @FunctionContext.expose(is_agentic=True)
    def undocumented(context, x: int):
        return x

    @FunctionContext.expose
    def plain(context):
        return 1

    module.add, module.undocumented, module.plain = add, undocumented, plain
    return module


class ReservedEntriesTest(unittest.TestCase):
    """With wasmfn's own schema writer, as in a bundle without pydantic."""

    def setUp(self):
        saved, schema_utils.pydantic = schema_utils.pydantic, None
        self.addCleanup(setattr, schema_utils, "pydantic", saved)
        AppDescription._instance = None
        self.addCleanup(setattr, AppDescription, "_instance", None)
        issue = _modules.ImportIssue("broken", "No module named 'nope'", ImportError())
        self.tools = _agent_tools.AgentTools({"notes": _tool_module("notes")}, [issue])

    def test_list_agent_tools_lists_ready_tools_with_pydantic_style_schemas(self):
        answer = self.tools.answer("list-agent-tools")
        self.assertEqual(answer["result"], "success")
        self.assertEqual([t["name"] for t in answer["data"]], ["notes.add"])
        add = answer["data"][0]
        self.assertEqual(list(add), ["name", "description", "requires_human_permission", "inputSchema", "outputSchema", "meta", "issues"])
        self.assertEqual(add["description"], "Adds a note.")
        self.assertTrue(add["requires_human_permission"])
        self.assertEqual(add["inputSchema"], {
            "properties": {
                "text": {"title": "Text", "type": "string"},
                "subject": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Subject"},
                "kind": {"default": "a", "enum": ["a", "b"], "title": "Kind", "type": "string"},
            },
            "required": ["text"],
            "type": "object",
        })
        self.assertEqual(add["outputSchema"], {
            "properties": {"output": {"title": "Output", "type": "object"}}, "required": ["output"], "type": "object",
        })
        self.assertEqual(add["meta"], {"k": 1})

    def test_issues_list_import_errors_then_tools_that_are_not_ready(self):
        answer = self.tools.answer("functions.list-agent-tools-issues")
        self.assertEqual(answer["data"][0], {"type": "import_error", "module_name": "broken", "error": "No module named 'nope'"})
        self.assertEqual(answer["data"][1]["name"], "notes.undocumented")
        self.assertEqual(answer["data"][1]["issues"], [{"type": "description_missing", "error": "Agentic methods require description for docstrings"}])

    def test_app_description_answers_with_or_without_one(self):
        self.assertEqual(self.tools.answer("app-description"), {"result": "success", "data": {"description": None, "shortName": None}})
        AppDescription(description="Logs notes", short_name="notes")
        self.assertEqual(self.tools.answer("x.app-description")["data"], {"description": "Logs notes", "shortName": "notes"})
        self.assertIsNone(self.tools.answer("notes.add"))

    def test_schema_writer_reports_what_it_cannot_describe(self):
        def odd(context, when: complex):
            pass

        schema = generate_input_schema(odd)
        self.assertIsNone(schema.schema)
        self.assertEqual(schema.issue["type"], "input_schema_generation_error")
        self.assertIsNone(generate_output_schema(odd).schema, "no return annotation: no schema")


    def test_newer_pydantic_schemas_are_written_as_the_sdks_pydantic_writes_them(self):
        newer = {
            "properties": {
                "output": {"additionalProperties": True, "title": "Output", "type": "object"},
                "extra": {"additionalProperties": True, "properties": {"a": {"type": "integer"}},
                          "type": "object"},
                "typed": {"additionalProperties": {"type": "integer"}, "type": "object"},
                "items": {"items": {"additionalProperties": True, "type": "object"}, "type": "array"},
            },
            "required": ["output"],
            "type": "object",
        }
        self.assertEqual(
            schema_utils.as_sdk_pydantic_writes(newer)["properties"],
            {
                "output": {"title": "Output", "type": "object"},
                "extra": {"additionalProperties": True, "properties": {"a": {"type": "integer"}},
                          "type": "object"},
                "typed": {"additionalProperties": {"type": "integer"}, "type": "object"},
                "items": {"items": {"type": "object"}, "type": "array"},
            },
        )


class InputModelTest(unittest.TestCase):
    def test_an_input_model_validates_and_its_errors_are_bad_arguments(self):
        class Model:
            def __init__(self, count, **ignored):
                if not str(count).isdigit():
                    raise ValueError("count: not an integer")
                self.count = int(count)

        def f(context, count: int):
            return count

        f.exposed, f.input_model = True, Model
        self.assertEqual(_dispatch.select_arguments(f, {"count": "5", "extra": 1}), {"count": 5})
        with self.assertRaisesRegex(_dispatch.BadArguments, "not an integer"):
            _dispatch.select_arguments(f, {"count": "five"})


class ImportRoundsTest(unittest.TestCase):
    """An import cycle that works from one module fails from another; the build finds the order."""

    def setUp(self):
        self.root = tempfile.mkdtemp()
        files = {
            # `cyca` needs `cycb` to exist first; importing `cyca` first fails, `cycb` first works.
            "cyca.py": "from cycb import helper\nfrom ixoncdkingress.function.context import FunctionContext\n"
                       "@FunctionContext.expose\ndef run(context):\n    return helper()\n",
            "cycb.py": "import cyca\ndef helper():\n    return 'ok'\n",
            "broken.py": "raise RuntimeError('cannot import me')\n",
        }
        for name, text in files.items():
            with open(os.path.join(self.root, name), "w") as file:
                file.write(text)
        sys.path.insert(0, self.root)
        self.addCleanup(sys.path.remove, self.root)
        self.addCleanup(lambda: [sys.modules.pop(n, None) for n in ("cyca", "cycb", "broken")])

    def test_failed_imports_are_undone_and_retried_after_the_others(self):
        modules, issues = _modules.import_all(["cyca", "cycb", "broken"], first=None)
        self.assertEqual(sorted(modules), ["cyca", "cycb"])
        self.assertEqual([(i.module_name, i.error) for i in issues], [("broken", "cannot import me")])
        self.assertNotIn("broken", sys.modules)
        self.assertEqual(_dispatch.exposed_in("cyca", modules["cyca"])["cyca.run"](None), "ok")
        self.assertTrue(_modules.is_users(modules["cyca"], [self.root]))
        self.assertFalse(_modules.is_users(os, [self.root]))


if __name__ == "__main__":
    unittest.main()
