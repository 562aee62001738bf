"""ObjectStorageClient against an in-memory fake of the host's object store."""

import datetime
import unittest
from types import SimpleNamespace

from wasmfn.objects import (
    InvalidKey,
    Listing,
    ObjectInfo,
    ObjectNotFound,
    ObjectStorageClient,
    ObjectStorageError,
    ObjectTooLarge,
    StorageUnavailable,
    StoredObject,
    object_error,
)

UTC = datetime.timezone.utc


class FakeObjects:
    """Objects by key; records calls; ``list`` pages by key order like the host."""

    def __init__(self):
        self.objects = {}
        self.calls = []
        self.clock = 1_700_000_000_123

    def _info(self, key):
        body, content_type, metadata, modified = self.objects[key]
        return SimpleNamespace(
            key=key,
            size=len(body),
            content_type=content_type,
            metadata=list(metadata),
            last_modified=modified,
            etag=f'"{len(body)}"',
        )

    def _existing(self, key):
        if key.startswith("/") or ".." in key.split("/"):
            raise object_error("invalid-key", f"bad key {key!r}")
        if key not in self.objects:
            raise object_error("not-found", key)

    def put(self, key, body, content_type, metadata):
        self.calls.append(("put", key, body, content_type, metadata))
        if len(body) > 100:
            raise object_error("too-large", "limit is 100 bytes")
        self.objects[key] = (body, content_type or "application/octet-stream", metadata, self.clock)
        return self._info(key)

    def get(self, key):
        self.calls.append(("get", key))
        self._existing(key)
        return self._info(key), self.objects[key][0]

    def head(self, key):
        self.calls.append(("head", key))
        self._existing(key)
        return self._info(key)

    def delete(self, key):
        self.calls.append(("delete", key))
        return self.objects.pop(key, None) is not None

    def list(self, prefix, start_after, max_keys):
        self.calls.append(("list", prefix, start_after, max_keys))
        keys = sorted(k for k in self.objects if k.startswith(prefix) and (start_after is None or k > start_after))
        page = keys[:max_keys]
        more = len(keys) > max_keys
        return [self._info(k) for k in page], (page[-1] if more else None)

    def presign(self, key, method, expires_in):
        self.calls.append(("presign", key, method, expires_in))
        return f"https://wasmfn.example/o/{key}?m={method}&e={expires_in}"


class ObjectStorageTest(unittest.TestCase):
    def setUp(self):
        self.backend = FakeObjects()
        self.storage = ObjectStorageClient(self.backend)

    def test_put_bytes_and_read_them_back(self):
        info = self.storage.put("a/b.bin", b"\x00\x01", metadata={"owner": "ada"})
        self.assertIsInstance(info, ObjectInfo)
        self.assertEqual(self.backend.calls[-1], ("put", "a/b.bin", b"\x00\x01", None, [("owner", "ada")]))
        self.assertEqual((info.key, info.size, info.content_type), ("a/b.bin", 2, "application/octet-stream"))
        self.assertEqual(info.metadata, {"owner": "ada"})
        self.assertEqual(info.last_modified, datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC))
        self.assertEqual(info.etag, '"2"')
        stored = self.storage.get("a/b.bin")
        self.assertIsInstance(stored, StoredObject)
        self.assertEqual(stored.data, b"\x00\x01")
        self.assertEqual(stored.info, info)

    def test_put_text_is_utf8_with_a_text_content_type(self):
        self.storage.put("notes.txt", "héllo")
        _, _, body, content_type, _ = self.backend.calls[-1]
        self.assertEqual((body, content_type), ("héllo".encode(), "text/plain; charset=utf-8"))
        self.assertEqual(self.storage.get("notes.txt").text(), "héllo")
        self.storage.put("data.json", '{"a": [1]}', content_type="application/json")
        self.assertEqual(self.backend.calls[-1][3], "application/json")
        self.assertEqual(self.storage.get("data.json").json(), {"a": [1]})

    def test_text_uses_the_stored_charset(self):
        self.storage.put("l1.txt", "é".encode("latin-1"), content_type="text/plain; charset=latin-1")
        self.assertEqual(self.storage.get("l1.txt").text(), "é")

    def test_argument_types_are_checked(self):
        with self.assertRaises(TypeError):
            self.storage.put("k", {"a": 1})
        with self.assertRaises(TypeError):
            self.storage.put("k", b"", metadata={"n": 1})
        with self.assertRaises(TypeError):
            self.storage.get(5)
        self.assertEqual(self.backend.calls, [])

    def test_head_delete_exists(self):
        self.storage.put("k", b"abc")
        self.assertEqual(self.storage.head("k").size, 3)
        self.assertTrue(self.storage.exists("k"))
        self.assertTrue(self.storage.delete("k"))
        self.assertFalse(self.storage.delete("k"))
        self.assertFalse(self.storage.exists("k"))

    def test_errors(self):
        with self.assertRaises(ObjectNotFound) as caught:
            self.storage.get("missing")
        self.assertIsInstance(caught.exception, KeyError)
        self.assertEqual(str(caught.exception), "missing")
        with self.assertRaises(InvalidKey) as invalid:
            self.storage.head("../etc")
        self.assertIsInstance(invalid.exception, ValueError)
        with self.assertRaises(ObjectTooLarge):
            self.storage.put("big", b"x" * 101)
        self.assertIsInstance(object_error("unavailable", "down"), StorageUnavailable)
        for cls in (InvalidKey, ObjectNotFound, ObjectTooLarge, StorageUnavailable):
            self.assertTrue(issubclass(cls, ObjectStorageError))

    def test_list_pages_and_iter_walks_them_all(self):
        for name in ("r/3", "r/1", "r/2", "other"):
            self.storage.put(name, b"x")
        page = self.storage.list("r/", max_keys=2)
        self.assertIsInstance(page, Listing)
        self.assertEqual([info.key for info in page.objects], ["r/1", "r/2"])
        self.assertEqual(page.next_start_after, "r/2")
        last = self.storage.list("r/", start_after=page.next_start_after, max_keys=2)
        self.assertEqual(([i.key for i in last.objects], last.next_start_after), (["r/3"], None))
        self.backend.calls.clear()
        self.assertEqual([info.key for info in self.storage.iter("r/", page_size=1)], ["r/1", "r/2", "r/3"])
        self.assertEqual(
            [call[2] for call in self.backend.calls], [None, "r/1", "r/2"]
        )  # start_after of each page
        with self.assertRaises(ValueError):
            self.storage.list(max_keys=0)

    def test_presigned_url(self):
        url = self.storage.presigned_url("r/1", method="put", expires_in=datetime.timedelta(minutes=2))
        self.assertEqual(self.backend.calls[-1], ("presign", "r/1", "PUT", 120))
        self.assertEqual(url, "https://wasmfn.example/o/r/1?m=PUT&e=120")
        self.assertEqual(self.storage.presigned_url("r/1"), "https://wasmfn.example/o/r/1?m=GET&e=900")
        with self.assertRaises(ValueError):
            self.storage.presigned_url("r/1", method="DELETE")
        with self.assertRaises(ValueError):
            self.storage.presigned_url("r/1", expires_in=0)


if __name__ == "__main__":
    unittest.main()
