"""The in-bundle source archive: modules first imported during a call are found without a filesystem."""

import os
import shutil
import sys
import tempfile
import unittest

from wasmfn import _sources


class ArchiveImportTest(unittest.TestCase):
    def setUp(self) -> None:
        self.root = tempfile.mkdtemp()
        self.saved = (list(sys.path), list(sys.path_hooks), dict(sys.path_importer_cache))
        self.addCleanup(self.restore)
        files = {
            "lazyapp/__init__.py": "from lazyapp.core import VALUE\n",
            "lazyapp/core.py": "VALUE = 41\n",
            "lazyapp/late.py": "from lazyapp import VALUE\nANSWER = VALUE + 1\n",
            "lazyapp/data.txt": "payload",
            "lazyns/part.py": "NAME = 'namespace portion'\n",
            "lazyapp/__pycache__/core.cpython-314.pyc": "not source",
        }
        for relative, text in files.items():
            path = os.path.join(self.root, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                file.write(text)

    def restore(self) -> None:
        sys.path[:], sys.path_hooks[:] = self.saved[0], self.saved[1]
        sys.path_importer_cache.clear()
        sys.path_importer_cache.update(self.saved[2])
        for name in [n for n in sys.modules if n.split(".")[0] in ("lazyapp", "lazyns")]:
            del sys.modules[name]

    def test_modules_import_from_the_archive_after_the_folder_is_gone(self) -> None:
        archive = _sources.capture([self.root], stdlib_roots=[])
        self.assertNotIn(os.path.join(self.root, "lazyapp/__pycache__/core.cpython-314.pyc"), archive)
        shutil.rmtree(self.root)  # as in a running instance: the build-time mount is gone
        sys.path.insert(0, self.root)
        _sources.install(archive)

        import lazyapp.late  # noqa: PLC0415 - the point: imported after install

        self.assertEqual(lazyapp.late.ANSWER, 42)
        self.assertEqual(lazyapp.late.__file__, os.path.join(self.root, "lazyapp", "late.py"))
        self.assertEqual(lazyapp.__loader__.get_data(os.path.join(self.root, "lazyapp", "data.txt")), b"payload")
        import lazyns.part  # noqa: PLC0415

        self.assertEqual(lazyns.part.NAME, "namespace portion")
        with self.assertRaises(ModuleNotFoundError):
            import lazyapp.missing  # noqa: F401, PLC0415

    def test_skipped_stdlib_folders_stay_out(self) -> None:
        os.makedirs(os.path.join(self.root, "test"))
        with open(os.path.join(self.root, "test", "big.py"), "w") as file:
            file.write("X = 1\n")
        archive = _sources.capture([self.root], stdlib_roots=[self.root])
        self.assertNotIn(os.path.join(self.root, "test", "big.py"), archive)
        self.assertIn(os.path.join(self.root, "lazyapp", "core.py"), archive)


if __name__ == "__main__":
    unittest.main()
