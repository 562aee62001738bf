"""DocumentDBClient and the pymongo subset, against an in-memory fake of the host's store."""

import datetime
import json
import unittest
import warnings

import pymongo
from bson import ObjectId
from bson.errors import BSONError, InvalidDocument
from ixoncdkingress.function.context import FunctionContext
from ixoncdkingress.function.document_db_client import DocumentDBClient, document_error
from pymongo.cursor import Cursor
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
)
from pymongo.results import DeleteResult, InsertManyResult, InsertOneResult, UpdateResult
from wasmfn import _extjson

UTC = datetime.timezone.utc
_MISSING = object()


class FakeDocuments:
    """Just enough of the host's document store to test the client's plumbing: equality
    filters on top-level keys, inclusion projections, ``$set``/``$inc``, and sorts.
    It records every call with its JSON arguments."""

    def __init__(self):
        self.docs = []
        self.calls = []
        self.fail = None

    def _call(self, *call):
        self.calls.append(call)
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error

    @staticmethod
    def _matches(doc, filt):
        return all(doc.get(key, _MISSING) == value for key, value in filt.items())

    def _matching(self, filter_json):
        filt = _extjson.decode(filter_json)
        return [doc for doc in self.docs if self._matches(doc, filt)]

    def find(self, filter_json, projection_json, sort_json, skip, limit):
        self._call("find", filter_json, projection_json, sort_json, skip, limit)
        found = self._matching(filter_json)
        if sort_json is not None:
            for field, direction in reversed(json.loads(sort_json)):  # stable: last key first
                found.sort(key=lambda doc: doc[field], reverse=direction == -1)
        found = found[skip:]
        if limit:
            found = found[:limit]
        if projection_json is not None:
            keep = {"_id"} | set(json.loads(projection_json))
            found = [{k: v for k, v in doc.items() if k in keep} for doc in found]
        return [_extjson.encode(doc) for doc in found]

    def count(self, filter_json):
        self._call("count", filter_json)
        return len(self._matching(filter_json))

    def insert(self, documents_json):
        self._call("insert", documents_json)
        docs = [_extjson.decode(text) for text in documents_json]
        ids = [doc["_id"] for doc in self.docs]
        for doc in docs:
            if doc["_id"] in ids:
                raise document_error("duplicate-key", f"E11000 duplicate key _id: {doc['_id']}")
            ids.append(doc["_id"])
        self.docs.extend(docs)
        return [_extjson.encode(doc["_id"]) for doc in docs]

    @staticmethod
    def _apply(doc, update):
        before = dict(doc)
        for key, value in update.get("$set", {}).items():
            doc[key] = value
        for key, value in update.get("$inc", {}).items():
            doc[key] = doc.get(key, 0) + value
        return doc != before

    def _upsert(self, filter_json, build):
        doc = dict(_extjson.decode(filter_json))
        doc.setdefault("_id", ObjectId())
        build(doc)
        self.docs.append(doc)
        return 0, 0, _extjson.encode(doc["_id"])

    def update(self, filter_json, update_json, many, upsert):
        self._call("update", filter_json, update_json, many, upsert)
        update = _extjson.decode(update_json)
        matched = self._matching(filter_json)
        if not many:
            matched = matched[:1]
        if not matched and upsert:
            return self._upsert(filter_json, lambda doc: self._apply(doc, update))
        modified = sum(self._apply(doc, update) for doc in matched)
        return len(matched), modified, None

    def replace(self, filter_json, replacement_json, upsert):
        self._call("replace", filter_json, replacement_json, upsert)
        replacement = _extjson.decode(replacement_json)
        matched = self._matching(filter_json)[:1]
        if not matched and upsert:
            return self._upsert(filter_json, lambda doc: doc.update(replacement))
        for doc in matched:
            keep = doc["_id"]
            doc.clear()
            doc.update(replacement, _id=keep)
        return len(matched), len(matched), None

    def delete(self, filter_json, many):
        self._call("delete", filter_json, many)
        matched = self._matching(filter_json)
        if not many:
            matched = matched[:1]
        for doc in matched:
            self.docs.remove(doc)
        return len(matched)


class ClientTestCase(unittest.TestCase):
    def setUp(self):
        self.backend = FakeDocuments()
        self.client = DocumentDBClient(self.backend, "company-1")

    def seed(self, *docs):
        self.client.insert_many([dict(doc) for doc in docs])
        self.backend.calls.clear()


class InsertTest(ClientTestCase):
    def test_insert_one_sets_the_id_on_the_callers_document(self):
        document = {"name": "pump"}
        result = self.client.insert_one(document)
        self.assertIsInstance(result, InsertOneResult)
        self.assertTrue(result.acknowledged)
        self.assertIsInstance(document["_id"], ObjectId)
        self.assertEqual(result.inserted_id, document["_id"])
        # The id was set before sending: the host received it.
        (sent,) = self.backend.calls[0][1]
        self.assertEqual(_extjson.decode(sent), document)

    def test_insert_one_keeps_a_given_id(self):
        result = self.client.insert_one({"_id": "mine", "x": 1})
        self.assertEqual(result.inserted_id, "mine")
        self.assertEqual(self.backend.docs, [{"_id": "mine", "x": 1}])

    def test_insert_one_needs_a_mutable_mapping(self):
        with self.assertRaisesRegex(TypeError, "document must be an instance of dict"):
            self.client.insert_one([("a", 1)])
        self.assertEqual(self.backend.calls, [])

    def test_insert_many_sets_ids_in_order(self):
        documents = [{"n": 1}, {"_id": 7, "n": 2}, {"n": 3}]
        result = self.client.insert_many(documents)
        self.assertIsInstance(result, InsertManyResult)
        self.assertEqual(result.inserted_ids, [doc["_id"] for doc in documents])
        self.assertEqual(result.inserted_ids[1], 7)
        self.assertEqual(len(self.backend.calls), 1)
        self.assertEqual(len(self.backend.calls[0][1]), 3)

    def test_insert_many_needs_a_non_empty_list(self):
        for bad in ([], {"a": 1}, 5):
            with self.assertRaisesRegex(TypeError, "non-empty list"):
                self.client.insert_many(bad)
        with self.assertRaises(InvalidOperation):
            self.client.insert_many(doc for doc in [])

    def test_duplicate_ids(self):
        self.client.insert_one({"_id": 1})
        with self.assertRaises(DuplicateKeyError) as caught:
            self.client.insert_one({"_id": 1})
        self.assertEqual(caught.exception.code, 11000)
        # insert_many reports duplicates as pymongo does: a BulkWriteError.
        with self.assertRaises(BulkWriteError) as bulk:
            self.client.insert_many([{"_id": 2}, {"_id": 1}])
        self.assertEqual(bulk.exception.details["nInserted"], 0)
        self.assertEqual(bulk.exception.details["writeErrors"][0]["code"], 11000)
        self.assertEqual(len(self.backend.docs), 1)


class FindTest(ClientTestCase):
    def setUp(self):
        super().setUp()
        self.seed({"name": "a", "n": 2}, {"name": "b", "n": 1}, {"name": "c", "n": 3})

    def test_find_is_lazy_until_iterated(self):
        cursor = self.client.find({"name": "a"})
        self.assertIsInstance(cursor, Cursor)
        self.assertEqual(self.backend.calls, [])
        self.assertEqual([doc["name"] for doc in cursor], ["a"])
        self.assertEqual(self.backend.calls, [("find", '{"name":"a"}', None, None, 0, 0)])

    def test_sort_skip_limit_reach_the_backend_as_json(self):
        cursor = self.client.find().sort("n", pymongo.DESCENDING).skip(1).limit(1)
        self.assertEqual([doc["name"] for doc in cursor], ["a"])
        self.assertEqual(self.backend.calls[-1], ("find", "{}", None, '[["n",-1]]', 1, 1))

    def test_sort_forms(self):
        self.assertEqual(self.client.find().sort("n")._ordering, [("n", 1)])
        self.assertEqual(
            self.client.find().sort([("n", 1), ("name", -1)])._ordering, [("n", 1), ("name", -1)]
        )
        self.assertEqual(self.client.find(sort=[("n", -1)])._ordering, [("n", -1)])
        list(self.client.find(sort=[("n", 1), "name"]))
        self.assertEqual(self.backend.calls[-1][3], '[["n",1],["name",1]]')
        with self.assertRaises(TypeError):
            self.client.find().sort(["n"], 1)
        with self.assertRaises(TypeError):
            self.client.find().sort([("n", 1.5)])

    def test_options_cannot_change_after_iteration_started(self):
        cursor = self.client.find()
        next(cursor)
        for change in (lambda: cursor.sort("n"), lambda: cursor.skip(1), lambda: cursor.limit(1)):
            with self.assertRaisesRegex(InvalidOperation, "cannot set options after executing query"):
                change()
        self.assertEqual(len(list(cursor)), 2)  # the rest of the results
        self.assertEqual(cursor.retrieved, 3)
        self.assertFalse(cursor.alive)

    def test_skip_and_limit_validation(self):
        with self.assertRaises(ValueError):
            self.client.find().skip(-1)
        with self.assertRaises(TypeError):
            self.client.find().limit("2")
        with self.assertRaises(TypeError):
            self.client.find([("name", "a")])

    def test_find_arguments(self):
        docs = list(self.client.find({}, ["name"], 0, 2, sort=[("n", 1)]))
        self.assertEqual(docs[0].keys(), {"_id", "name"})
        self.assertEqual([doc["name"] for doc in docs], ["b", "a"])
        self.assertEqual(self.backend.calls[-1], ("find", "{}", '{"name":1}', '[["n",1]]', 0, 2))
        with self.assertRaises(NotImplementedError):
            self.client.find({}, collation={"locale": "nl"})
        with self.assertRaises(TypeError):
            self.client.find({}, no_such_option=1)

    def test_clone_to_list_rewind_and_indexing(self):
        cursor = self.client.find().sort("n")
        self.assertEqual([doc["n"] for doc in cursor.to_list()], [1, 2, 3])
        self.assertEqual([doc["n"] for doc in cursor.clone()], [1, 2, 3])
        self.assertEqual([doc["n"] for doc in cursor.rewind().to_list(2)], [1, 2])
        self.assertEqual(self.client.find().sort("n")[2]["n"], 3)
        self.assertEqual(self.backend.calls[-1][4:], (2, 1))
        with self.assertRaises(IndexError):
            self.client.find()[5]
        self.assertEqual([d["n"] for d in self.client.find().sort("n")[1:3]], [2, 3])
        self.assertEqual(list(self.client.find()[1:1]), [])

    def test_find_one_forms(self):
        self.assertEqual(self.client.find_one({"name": "b"})["n"], 1)
        self.assertEqual(self.client.find_one(filter_map={"name": "c"})["n"], 3)
        self.assertIsNone(self.client.find_one({"name": "zz"}))
        self.assertEqual(self.backend.calls[-1][5], 1)  # find_one asks for one document
        first = self.client.find_one(filter_map={}, sort=[("n", -1)])
        self.assertEqual(first["n"], 3)
        by_id = self.client.find_one(first["_id"])  # a non-mapping filter means {"_id": ...}
        self.assertEqual(by_id, first)
        projected = self.client.find_one({"name": "a"}, projection={"n": 1, "_id": 0})
        self.assertEqual(json.loads(self.backend.calls[-1][2]), {"n": 1, "_id": 0})
        self.assertIn("n", projected)

    def test_object_ids_and_datetimes_round_trip(self):
        ref = ObjectId()
        when = datetime.datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)
        self.client.insert_one({"name": "t", "ref": ref, "at": when})
        found = self.client.find_one({"ref": ref})
        self.assertIsInstance(found["ref"], ObjectId)
        self.assertEqual(found["ref"], ref)
        self.assertIn('{"ref":{"$oid":"%s"}}' % ref, self.backend.calls[-1])
        # pymongo's default (tz_aware=False): naive UTC datetimes.
        self.assertEqual(found["at"], when.replace(tzinfo=None))
        aware = DocumentDBClient(self.backend, "c", tz_aware=True).find_one({"ref": ref})
        self.assertEqual(aware["at"], when)
        self.assertIsNotNone(aware["at"].tzinfo)

    def test_count_documents(self):
        self.assertEqual(self.client.count_documents({}), 3)
        self.assertEqual(self.client.count_documents({"name": "a"}), 1)
        self.assertEqual(self.client.count_documents({}, skip=1, limit=1), 1)
        self.assertEqual(self.client.count_documents({}, skip=5), 0)
        with self.assertRaises(TypeError):
            self.client.count_documents(None)


class UpdateDeleteTest(ClientTestCase):
    def setUp(self):
        super().setUp()
        self.seed({"_id": 1, "kind": "x", "n": 1}, {"_id": 2, "kind": "x", "n": 1})

    def test_update_one_and_many(self):
        result = self.client.update_one({"kind": "x"}, {"$inc": {"n": 5}})
        self.assertIsInstance(result, UpdateResult)
        self.assertEqual((result.matched_count, result.modified_count), (1, 1))
        self.assertIsNone(result.upserted_id)
        self.assertTrue(result.raw_result["updatedExisting"])
        self.assertEqual(self.backend.calls[-1], ("update", '{"kind":"x"}', '{"$inc":{"n":5}}', False, False))
        result = self.client.update_many({"kind": "x"}, {"$set": {"n": 6}})
        self.assertEqual((result.matched_count, result.modified_count), (2, 1))
        self.assertTrue(self.backend.calls[-1][3])
        self.assertEqual([doc["n"] for doc in self.backend.docs], [6, 6])

    def test_upsert(self):
        result = self.client.update_one({"kind": "y"}, {"$set": {"n": 9}}, upsert=True)
        self.assertIsInstance(result.upserted_id, ObjectId)
        self.assertEqual(result.matched_count, 0)
        self.assertEqual(result.raw_result["n"], 1)
        self.assertFalse(result.raw_result["updatedExisting"])
        self.assertTrue(self.backend.calls[-1][4])
        self.assertEqual(self.client.find_one({"kind": "y"})["_id"], result.upserted_id)

    def test_update_needs_operators(self):
        with self.assertRaisesRegex(ValueError, r"update only works with \$ operators"):
            self.client.update_one({"_id": 1}, {"n": 2})
        with self.assertRaisesRegex(ValueError, "update cannot be empty"):
            self.client.update_many({}, {})
        with self.assertRaises(TypeError):
            self.client.update_one([("_id", 1)], {"$set": {"n": 2}})
        self.assertEqual(self.backend.calls, [])

    def test_replace_one(self):
        with self.assertRaisesRegex(ValueError, r"replacement can not include \$ operators"):
            self.client.replace_one({"_id": 1}, {"$set": {"n": 2}})
        result = self.client.replace_one({"_id": 1}, {"other": True})
        self.assertEqual((result.matched_count, result.modified_count), (1, 1))
        self.assertEqual(self.backend.docs[0], {"_id": 1, "other": True})
        upserted = self.client.replace_one({"_id": 3}, {"v": 1}, upsert=True)
        self.assertEqual(upserted.upserted_id, 3)

    def test_delete(self):
        result = self.client.delete_one({"kind": "x"})
        self.assertIsInstance(result, DeleteResult)
        self.assertEqual(result.deleted_count, 1)
        self.assertEqual(self.backend.calls[-1], ("delete", '{"kind":"x"}', False))
        self.seed({"_id": 5, "kind": "x"})
        self.assertEqual(self.client.delete_many({"kind": "x"}).deleted_count, 2)
        self.assertEqual(self.client.delete_many({}).raw_result, {"n": 0, "ok": 1.0})
        with self.assertRaises(TypeError):
            self.client.delete_one("kind")

    def test_unsupported_write_options(self):
        with self.assertRaises(NotImplementedError):
            self.client.update_one({}, {"$set": {"a": 1}}, array_filters=[{"x": 1}])
        with self.assertRaises(TypeError):
            self.client.delete_one({}, bogus=True)


class ErrorTest(ClientTestCase):
    def test_backend_errors_surface_as_pymongo_exceptions(self):
        cases = [
            ("invalid", OperationFailure, (PyMongoError,)),
            ("too-large", DocumentTooLarge, (InvalidDocument, BSONError)),
            ("duplicate-key", DuplicateKeyError, (WriteError, OperationFailure)),
            ("limit-exceeded", ExecutionTimeout, (OperationFailure,)),
            ("unavailable", ServerSelectionTimeoutError, (AutoReconnect, ConnectionFailure, PyMongoError)),
        ]
        for kind, cls, bases in cases:
            with self.subTest(kind=kind):
                self.backend.fail = document_error(kind, f"{kind} happened")
                with self.assertRaises(cls) as caught:
                    list(self.client.find({}))
                self.assertIn(f"{kind} happened", str(caught.exception))
                for base in bases:
                    self.assertIsInstance(caught.exception, base)
        self.assertEqual(document_error("limit-exceeded", "slow").code, 50)

    def test_a_space_quota_is_a_write_error_and_a_bulk_write_error_for_insert_many(self):
        message = "quota exceeded: the space holds 5 documents and this write adds 1"
        self.backend.fail = document_error("limit-exceeded", message)
        with self.assertRaises(WriteError) as caught:
            self.client.insert_one({"a": 1})
        self.assertEqual((caught.exception.code, caught.exception.timeout), (8000, False))
        self.assertNotIsInstance(caught.exception, ExecutionTimeout)
        self.backend.fail = document_error("limit-exceeded", message)
        with self.assertRaises(BulkWriteError) as bulk:
            self.client.insert_many([{"a": 1}, {"a": 2}])
        errors = bulk.exception.details["writeErrors"]
        self.assertEqual([(e["code"], e["errmsg"]) for e in errors], [(8000, message)])
        self.assertTrue(document_error("unavailable", "down").timeout)

    def test_operation_failure_fields(self):
        error = OperationFailure("bad", 2, {"errmsg": "bad"})
        self.assertEqual((error.code, error.details), (2, {"errmsg": "bad"}))
        self.assertEqual(str(error), "bad, full error: {'errmsg': 'bad'}")

    def test_encoding_errors_are_raised_before_sending(self):
        with self.assertRaises(InvalidDocument):
            self.client.insert_one({"bad": {1, 2}})
        self.assertEqual(self.backend.calls, [])


class ContextTest(unittest.TestCase):
    def test_context_exposes_the_clients(self):
        client = DocumentDBClient(FakeDocuments(), "company-1")
        storage = object()
        context = FunctionContext({}, document_db_client=client, object_storage=storage)
        self.assertIs(context.document_db_client, client)
        self.assertIs(context.object_storage, storage)
        self.assertIn("document_db_client=<DocumentDBClient company=company-1,>", repr(context))
        self.assertEqual(repr(client), "<DocumentDBClient company=company-1,>")
        bare = FunctionContext({})
        self.assertIsNone(bare.document_db_client)
        self.assertIsNone(bare.object_storage)
        self.assertIn("document_db_client=None", repr(bare))

    def test_time_series_client_warns_and_is_none(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.assertIsNone(FunctionContext({}).time_series_client)
        self.assertTrue(any(issubclass(w.category, FutureWarning) for w in caught))


if __name__ == "__main__":
    unittest.main()
