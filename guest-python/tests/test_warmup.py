import json
import unittest

from ixoncdkingress.function.context import FunctionContext
from wasmfn import _buildtime, _warmup
from wasmfn.outbound import transport


def plan(*calls, config=None) -> str:
    return json.dumps({"calls": list(calls), "config": config or {}})


def call(entry, repeat=1, ignore_errors=False, **arguments) -> dict:
    return {"entry": entry, "arguments": arguments, "repeat": repeat,
            "ignore_errors": ignore_errors}


class WarmupTest(unittest.TestCase):
    def setUp(self):
        self.seen = []

        @FunctionContext.expose
        def lookup(context, word="x", **kwargs):
            self.seen.append((word, context.config.get("region"), _buildtime.ACTIVE))
            print("printed during the warm-up")
            return {"word": word}

        @FunctionContext.expose
        def store(context, **kwargs):
            self.seen.append("store")
            context.document_db_client.find_one({})

        @FunctionContext.expose
        def fetch(context, **kwargs):
            # The host's transport (its bindings exist only inside a bundle), unbound.
            transport._WasiTransport.fetch(None, "GET", "http", "example.com", "/", [], None, None)

        self.exposed = {"functions.lookup": lookup, "functions.store": store,
                        "functions.fetch": fetch}

    def test_calls_are_made_as_declared_with_the_config(self):
        made = _warmup.run(self.exposed, plan(call("functions.lookup", repeat=3, word="pump"),
                                              config={"region": "eu"}))
        self.assertEqual(made, 3)
        self.assertEqual(self.seen, [("pump", "eu", True)] * 3)
        self.assertFalse(_buildtime.ACTIVE)

    def test_host_services_raise_and_fail_the_build_unless_ignored(self):
        with self.assertRaises(_warmup.WarmupFailed) as failed:
            _warmup.run(self.exposed, plan(call("functions.store")))
        self.assertIn("warmup[0] (functions.store) raised NotAtBuildTime", str(failed.exception))
        self.assertIn("the document store is not available during a build-time warm-up",
                      str(failed.exception))
        # The call's traceback comes with it, ending in the summary.
        self.assertTrue(str(failed.exception).startswith("Traceback (most recent call last):"))
        self.assertIn("in store", str(failed.exception))
        self.assertTrue(str(failed.exception).endswith("(set ignore_errors = true to build anyway)"))
        self.assertFalse(_buildtime.ACTIVE)

        # Ignored: the call stops at the error (no repeat) and the next call is still made.
        made = _warmup.run(self.exposed, plan(call("functions.store", repeat=5, ignore_errors=True),
                                              call("functions.lookup")))
        self.assertEqual(made, 2)
        self.assertEqual(self.seen, ["store", "store", ("x", None, True)])

    def test_a_client_kept_from_a_warmup_call_stays_unusable(self):
        kept = []

        @FunctionContext.expose
        def keep(context, **kwargs):
            kept.append(context.document_db_client)

        _warmup.run({"functions.keep": keep}, plan(call("functions.keep", repeat=1)))
        self.assertFalse(_buildtime.ACTIVE)
        with self.assertRaises(_buildtime.NotAtBuildTime) as refused:
            kept[0].find_one({})
        self.assertIn("made for a build-time warm-up call and kept", str(refused.exception))

    def test_outbound_requests_raise_instead_of_reaching_the_host(self):
        with self.assertRaises(_warmup.WarmupFailed) as failed:
            _warmup.run(self.exposed, plan(call("functions.fetch")))
        self.assertIn("an outbound request is not available", str(failed.exception))

    def test_unknown_entries_and_bad_arguments_fail_the_build(self):
        with self.assertRaises(_warmup.WarmupFailed) as failed:
            _warmup.run(self.exposed, plan(call("functions.nope")))
        self.assertIn("warmup[0] (functions.nope) raised NotFound", str(failed.exception))

    def test_no_calls_make_nothing(self):
        self.assertEqual(_warmup.run(self.exposed, plan()), 0)


if __name__ == "__main__":
    unittest.main()
