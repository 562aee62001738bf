"""The bundle's Python sources, kept inside the bundle so that modules can be imported during a call.

componentize-py snapshots the interpreter after the entry module loads and gives the component no
filesystem: without this, a module first imported during a call (``datetime.strptime`` loads
``_strptime``; ``import functions.report`` inside a function) cannot be found. At build time,
:func:`capture` reads every source under the import roots (the standard library, the function's
folder, its requirements) into an archive that lives in the snapshot's memory; :func:`install`
then makes the import system find modules in that archive, exactly where CPython found them at
build time (same ``sys.path`` order, same ``__file__``), so a call imports the module it names
and what that imports, in CPython's order, as under ixoncdkingress.

Pure Python with no WIT imports, so it runs (and is unit-tested) under any CPython.
"""

import importlib.abc
import importlib.machinery
import importlib.readers
import importlib.util
import os
import sys
import zlib

# Folders of the standard library no function imports (tests, GUIs, installers); leaving them out
# keeps the archive (and every bundle) smaller.
SKIPPED_STDLIB_DIRS = frozenset({
    "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "venv",
    "pydoc_data", "__phello__", "site-packages", "config-3.14-wasm32-wasi",
})
SKIPPED_DIRS = frozenset({"__pycache__", ".git", "node_modules", "dist"})
# Compiled bytecode is made again from the source; larger files are data no import needs.
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".so", ".wasm", ".exe", ".dll")
MAX_FILE_BYTES = 8 * 1024 * 1024


class SourceArchive:
    """Files by absolute path, zlib-compressed, and the set of folders that hold them."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = set()

    def add(self, path: str, data: bytes) -> None:
        self.files[path] = zlib.compress(data, 6)
        folder = os.path.dirname(path)
        while folder and folder not in self.dirs:
            self.dirs.add(folder)
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent

    def read(self, path: str) -> bytes:
        try:
            return zlib.decompress(self.files[path])
        except KeyError:
            raise OSError(f"{path} is not in the bundle") from None

    def __contains__(self, path: str) -> bool:
        return path in self.files


def capture(roots: list[str], stdlib_roots: list[str]) -> SourceArchive:
    """Reads every source file under ``roots`` (at build time, where they are mounted)."""
    archive = SourceArchive()
    # A root inside another (the standard library inside PYTHONHOME) is read once, as itself.
    nested = set(roots) | set(stdlib_roots)
    for root in roots:
        skipped = SKIPPED_DIRS | (SKIPPED_STDLIB_DIRS if root in stdlib_roots else frozenset())
        if not os.path.isdir(root):
            continue
        for folder, subdirs, files in os.walk(root):
            subdirs[:] = sorted(
                d for d in subdirs
                if d not in skipped and not d.startswith(".") and os.path.join(folder, d) not in nested
            )
            for name in files:
                if name.endswith(SKIPPED_SUFFIXES):
                    continue
                path = os.path.join(folder, name)
                try:
                    if os.path.getsize(path) > MAX_FILE_BYTES:
                        continue
                    with open(path, "rb") as file:
                        archive.add(path, file.read())
                except OSError:
                    continue
    return archive


class ArchiveLoader(importlib.abc.SourceLoader):
    """Loads a module's source from the archive (no bytecode cache: nothing is written)."""

    def __init__(self, archive: SourceArchive, fullname: str, path: str) -> None:
        self.archive = archive
        self.name = fullname
        self.path = path

    def get_filename(self, fullname: str | None = None) -> str:
        return self.path

    def get_data(self, path: str) -> bytes:
        return self.archive.read(path)

    def get_resource_reader(self, fullname: str) -> "importlib.readers.FileReader | None":
        # A package's resources are where they were at build time, as for a package imported
        # then: `importlib.resources.as_file` gives that path instead of copying the file into
        # a temporary directory the instance does not have.
        if not self.path.endswith("__init__.py"):
            return None
        return importlib.readers.FileReader(self)


class ArchiveFinder(importlib.abc.PathEntryFinder):
    """Finds modules of one folder of the archive, as ``FileFinder`` finds them on disk."""

    def __init__(self, archive: SourceArchive, folder: str) -> None:
        self.archive = archive
        self.folder = folder

    def find_spec(self, fullname: str, target: object = None):  # noqa: ANN201 - ModuleSpec | None
        tail = fullname.rpartition(".")[2]
        package = os.path.join(self.folder, tail)
        init = os.path.join(package, "__init__.py")
        if init in self.archive:
            loader = ArchiveLoader(self.archive, fullname, init)
            return importlib.util.spec_from_file_location(
                fullname, init, loader=loader, submodule_search_locations=[package]
            )
        module = package + ".py"
        if module in self.archive:
            loader = ArchiveLoader(self.archive, fullname, module)
            return importlib.util.spec_from_file_location(fullname, module, loader=loader)
        if package in self.archive.dirs:
            # A folder without __init__.py: a namespace package portion (PEP 420).
            spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
            spec.submodule_search_locations = [package]
            return spec
        return None

    def invalidate_caches(self) -> None:
        pass


def install(archive: SourceArchive) -> None:
    """Makes imports look in ``archive`` instead of the (build-time only) mounted folders."""

    def hook(path: str) -> ArchiveFinder:
        if path in archive.dirs:
            return ArchiveFinder(archive, path)
        raise ImportError(f"{path} is not a folder of the bundle")

    sys.path_hooks.insert(0, hook)
    # The finders cached at build time read folders that a running instance does not have.
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
