"""Importing the function's modules at build time, as ixoncdkingress would import them on calls.

ixoncdkingress imports only the module a call names, so an app whose modules import each other
in a cycle works as long as each call starts from a module the cycle can be entered by. At build
time wasmfn imports every module (so that calls find them in the snapshot): it starts with the
module bare names are served from (``functions``), takes the others in order, and when an import
fails it undoes what that import left in ``sys.modules`` and tries again after the rest, as a
long-running ixoncdkingress process would on a later call. What still fails is reported with its
traceback; a call that needs it imports it again and fails as it would on IXON.

Pure Python with no WIT imports, so it runs (and is unit-tested) under any CPython.
"""

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType


@dataclass
class ImportIssue:
    """A module that could not be imported at build time (the SDK's ``ModuleLoadIssue``)."""

    module_name: str
    error: str
    exception: BaseException

    def as_sdk_issue(self) -> dict[str, str]:
        return {"type": "import_error", "module_name": self.module_name, "error": self.error}


def import_all(names: list[str], first: str | None = "functions") -> tuple[dict[str, ModuleType], list[ImportIssue]]:
    """Imports ``names`` (``first`` before the rest), retrying failed ones while any succeed."""
    pending = sorted(names, key=lambda name: (name != first, name))
    imported: dict[str, ModuleType] = {}
    issues: dict[str, ImportIssue] = {}
    while pending:
        failed = []
        for name in pending:
            module, issue = _try_import(name)
            if module is not None:
                imported[name] = module
                issues.pop(name, None)
            else:
                failed.append(name)
                issues[name] = issue
        if len(failed) == len(pending):
            break
        pending = failed
    return imported, [issues[name] for name in sorted(issues)]


def _try_import(name: str) -> tuple[ModuleType | None, ImportIssue | None]:
    before = set(sys.modules)
    try:
        return importlib.import_module(name), None
    except BaseException as error:  # noqa: BLE001 - a module may raise anything, SystemExit too
        # A half-imported module must not satisfy the next attempt's imports.
        for added in set(sys.modules) - before:
            del sys.modules[added]
        return None, ImportIssue(name, str(error), error)


def is_users(module: ModuleType, user_roots: list[str]) -> bool:
    """True when ``module`` was loaded from the function's folder (not a same-named stdlib module)."""
    path = getattr(module, "__file__", None) or ""
    search = getattr(module, "__path__", None)
    if not path and search:
        path = next(iter(search), "")
    return any(path.startswith(root.rstrip("/") + "/") for root in user_roots)


# Native (C) modules of CPython that its WebAssembly build has no form of, and what they are for.
MISSING_NATIVE = {
    "_ssl": "ssl (TLS: smtplib.SMTP_SSL, HTTPS)",
    "_socket": "socket (network connections)",
    "_ctypes": "ctypes (calling C libraries)",
    "_multiprocessing": "multiprocessing (processes)",
    "_sqlite3": "sqlite3",
    "_tkinter": "tkinter (windows)",
    "readline": "readline (a terminal)",
    "_curses": "curses (a terminal)",
}


def build_failure(issues: list[ImportIssue], exposing: list[str]) -> BaseException | None:
    """The exception that fails the build, or None: when a module with exposed functions could
    not be imported, the root cause among all failed imports (a missing module, else the first
    failure of an exposing module), with a note on what a missing native module is."""
    if not any(issue.module_name in exposing for issue in issues):
        return None
    missing = [i for i in issues if isinstance(i.exception, ModuleNotFoundError)]
    chosen = (missing or [i for i in issues if i.module_name in exposing])[0].exception
    name = getattr(chosen, "name", None)
    if isinstance(chosen, ModuleNotFoundError) and name in MISSING_NATIVE:
        chosen.add_note(
            f"wasmfn: {MISSING_NATIVE[name]} needs the native module {name}, which CPython has "
            "no WebAssembly build of; a function cannot import it"
        )
    return chosen
