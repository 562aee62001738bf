"""Runs one exposed function of an IXON-style functions module and prints its result as JSON.

server.py starts this script in a fresh `python3 -I` process for every request, so each
invocation is isolated by the operating system the way wasmfn isolates it with a fresh
WebAssembly instance. Arguments (a JSON object, the request body) come on stdin and become
the function's keyword arguments, as ixoncdkingress passes them.

usage: run_function.py MODULE_DIR SDK_DIR ENTRY   (ENTRY like functions.hello_world)
"""

import importlib
import json
import sys


def main() -> int:
    module_dir, sdk_dir, entry = sys.argv[1:4]
    # -I leaves the script's folder and PYTHONPATH out of sys.path: add exactly these two.
    sys.path[:0] = [module_dir, sdk_dir]

    from ixoncdkingress.function.context import FunctionContext

    module_name, _, function_name = entry.rpartition(".")
    function = getattr(importlib.import_module(module_name or "functions"), function_name, None)
    if function is None or not getattr(function, "exposed", False):
        print(f"{entry} does not exist or is not exposed", file=sys.stderr)
        return 2

    raw = sys.stdin.read().strip()
    arguments = json.loads(raw) if raw else {}
    if not isinstance(arguments, dict):
        print("the request body must be a JSON object", file=sys.stderr)
        return 2

    json.dump(function(FunctionContext({}), **arguments), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
