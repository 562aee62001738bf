"""The pure-Python bson subset: ObjectId, json_util and the wire encoding (wasmfn._extjson)."""

import copy
import datetime
import decimal
import pickle
import struct
import time
import unittest

from bson import ObjectId, json_util
from bson.errors import BSONError, InvalidDocument, InvalidId
from bson.objectid import _reset_process_state
from wasmfn import _extjson

UTC = datetime.timezone.utc


class ObjectIdTest(unittest.TestCase):
    def test_generated_ids_have_time_process_bytes_and_an_incrementing_counter(self):
        before = int(time.time())
        a, b = ObjectId(), ObjectId()
        after = int(time.time())
        self.assertEqual(len(a.binary), 12)
        self.assertTrue(before <= struct.unpack(">I", a.binary[:4])[0] <= after)
        self.assertEqual(a.binary[4:9], b.binary[4:9])  # per-process random bytes
        counter = lambda oid: int.from_bytes(oid.binary[9:], "big")  # noqa: E731
        self.assertEqual(counter(b), (counter(a) + 1) % 0x1000000)
        self.assertNotEqual(a, b)

    def test_process_state_is_drawn_on_first_use_and_can_be_redrawn(self):
        first = ObjectId()
        _reset_process_state()
        self.assertIsNone(ObjectId._random_bytes)
        second = ObjectId()
        self.assertIsNotNone(ObjectId._random_bytes)
        # 5 random bytes and a random counter start: equal with probability 2**-64.
        self.assertNotEqual(first.binary[4:], second.binary[4:])

    def test_constructors(self):
        oid = ObjectId()
        self.assertEqual(ObjectId(str(oid)), oid)
        self.assertEqual(ObjectId(oid.binary), oid)
        self.assertEqual(ObjectId(oid), oid)
        self.assertEqual(ObjectId("0123456789ABCDEF01234567"), ObjectId("0123456789abcdef01234567"))

    def test_invalid_values(self):
        for bad in ("abc", "zz" * 12, "0123456789ab"):
            with self.assertRaises(InvalidId):
                ObjectId(bad)
        for bad in (12, b"short"):  # as pymongo: only 12 bytes are accepted as bytes
            with self.assertRaises(TypeError):
                ObjectId(bad)
        self.assertTrue(issubclass(InvalidId, BSONError))
        self.assertFalse(ObjectId.is_valid("abc"))
        self.assertFalse(ObjectId.is_valid(None))
        self.assertFalse(ObjectId.is_valid(12))
        self.assertTrue(ObjectId.is_valid("0123456789abcdef01234567"))
        self.assertTrue(ObjectId.is_valid(b"123456789012"))

    def test_str_repr_and_generation_time(self):
        oid = ObjectId("5f0c0a0b0c0d0e0f10111213")
        self.assertEqual(str(oid), "5f0c0a0b0c0d0e0f10111213")
        self.assertEqual(repr(oid), "ObjectId('5f0c0a0b0c0d0e0f10111213')")
        self.assertEqual(oid.generation_time, datetime.datetime.fromtimestamp(0x5F0C0A0B, UTC))
        self.assertIsNotNone(oid.generation_time.tzinfo)

    def test_from_datetime(self):
        naive = ObjectId.from_datetime(datetime.datetime(2020, 1, 1))
        self.assertEqual(naive.generation_time, datetime.datetime(2020, 1, 1, tzinfo=UTC))
        self.assertEqual(naive.binary[4:], b"\x00" * 8)
        plus_two = datetime.timezone(datetime.timedelta(hours=2))
        aware = ObjectId.from_datetime(datetime.datetime(2020, 1, 1, 2, tzinfo=plus_two))
        self.assertEqual(aware, naive)

    def test_equality_ordering_hash(self):
        low, high = ObjectId("000000000000000000000001"), ObjectId("000000000000000000000002")
        self.assertTrue(low < high <= high and high > low >= low)
        self.assertEqual(sorted([high, low]), [low, high])
        self.assertEqual(hash(low), hash(ObjectId(str(low))))
        self.assertEqual(len({low, ObjectId(low), high}), 2)
        self.assertNotEqual(low, str(low))
        with self.assertRaises(TypeError):
            _ = low < "x"

    def test_pickle_and_copy(self):
        oid = ObjectId()
        self.assertEqual(pickle.loads(pickle.dumps(oid)), oid)
        self.assertEqual(copy.deepcopy({"a": oid})["a"], oid)


class JsonUtilTest(unittest.TestCase):
    def test_dumps_uses_relaxed_extended_json_like_pymongo_4(self):
        oid = ObjectId("5f0c0a0b0c0d0e0f10111213")
        when = datetime.datetime(2024, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
        text = json_util.dumps({"_id": oid, "at": when, "n": 1, "l": (1, 2)})
        self.assertEqual(
            text,
            '{"_id": {"$oid": "5f0c0a0b0c0d0e0f10111213"}, '
            '"at": {"$date": "2024-01-31T12:00:00.123Z"}, "n": 1, "l": [1, 2]}',
        )
        # Before 1970 relaxed mode falls back to $numberLong.
        self.assertEqual(
            json_util.dumps(datetime.datetime(1969, 12, 31, 23, 59, 59)),
            '{"$date": {"$numberLong": "-1000"}}',
        )

    def test_legacy_options_write_milliseconds(self):
        when = datetime.datetime(1970, 1, 1, 0, 0, 1, 500000)
        self.assertEqual(
            json_util.dumps(when, json_options=json_util.LEGACY_JSON_OPTIONS), '{"$date": 1500}'
        )

    def test_loads_restores_types_with_naive_utc_datetimes(self):
        oid = ObjectId()
        when = datetime.datetime(2024, 1, 31, 12, 0, 0, 123000)
        for options in (json_util.DEFAULT_JSON_OPTIONS, json_util.LEGACY_JSON_OPTIONS):
            back = json_util.loads(json_util.dumps({"_id": oid, "at": when}, json_options=options))
            self.assertEqual(back, {"_id": oid, "at": when})
        self.assertEqual(json_util.loads('{"$date": 1000}'), datetime.datetime(1970, 1, 1, 0, 0, 1))
        self.assertEqual(
            json_util.loads('{"$date": "2024-01-31T14:00:00+02:00"}'),
            datetime.datetime(2024, 1, 31, 12, 0),
        )
        aware = json_util.loads(
            '{"$date": 0}', json_options=json_util.DEFAULT_JSON_OPTIONS.with_options(tz_aware=True)
        )
        self.assertEqual(aware, datetime.datetime(1970, 1, 1, tzinfo=UTC))

    def test_bytes_and_numbers(self):
        self.assertEqual(json_util.loads(json_util.dumps({"b": b"\x00\x01"})), {"b": b"\x00\x01"})
        self.assertEqual(json_util.loads('{"$numberLong": "12"}'), 12)
        canonical = json_util.dumps({"i": 1, "f": 1.5}, json_options=json_util.CANONICAL_JSON_OPTIONS)
        self.assertEqual(canonical, '{"i": {"$numberInt": "1"}, "f": {"$numberDouble": "1.5"}}')

    def test_unknown_types_still_fail(self):
        with self.assertRaises(TypeError):
            json_util.dumps({"d": decimal.Decimal("1.5")})


class ExtJsonTest(unittest.TestCase):
    def test_encoding_is_compact_extended_json_with_milliseconds(self):
        oid = ObjectId("5f0c0a0b0c0d0e0f10111213")
        when = datetime.datetime(1970, 1, 1, 0, 0, 1, 250999, tzinfo=UTC)
        self.assertEqual(
            _extjson.encode({"_id": oid, "at": when, "t": (1, "a"), "x": None, "ok": True}),
            '{"_id":{"$oid":"5f0c0a0b0c0d0e0f10111213"},"at":{"$date":1250},'
            '"t":[1,"a"],"x":null,"ok":true}',
        )
        plus_one = datetime.timezone(datetime.timedelta(hours=1))
        self.assertEqual(
            _extjson.encode(datetime.datetime(1970, 1, 1, 1, tzinfo=plus_one)), '{"$date":0}'
        )
        self.assertEqual(_extjson.encode(datetime.datetime(1970, 1, 1)), '{"$date":0}')

    def test_decoding_restores_objectids_and_aware_datetimes(self):
        oid = ObjectId()
        text = _extjson.encode({"doc": {"_id": oid, "at": [datetime.datetime(2024, 5, 1, 8, tzinfo=UTC)]}})
        back = _extjson.decode(text)
        self.assertEqual(back["doc"]["_id"], oid)
        self.assertIsInstance(back["doc"]["_id"], ObjectId)
        self.assertEqual(back["doc"]["at"][0], datetime.datetime(2024, 5, 1, 8, tzinfo=UTC))
        naive = _extjson.decode('{"$date": 0}', tz_aware=False)
        self.assertEqual(naive, datetime.datetime(1970, 1, 1))
        self.assertEqual(
            _extjson.decode('{"$date": {"$numberLong": "1000"}}'),
            datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
        )

    def test_other_values_round_trip(self):
        value = {"b": b"\xff", "nan": float("inf"), "big": 2**62, "s": "é"}
        self.assertEqual(_extjson.decode(_extjson.encode(value)), value)
        # Wrappers with more than one key (or invalid values) stay plain documents.
        self.assertEqual(_extjson.decode('{"$oid": "nothex"}'), {"$oid": "nothex"})
        self.assertEqual(
            _extjson.decode('{"$date": 1, "other": 2}'), {"$date": 1, "other": 2}
        )

    def test_what_bson_cannot_hold_is_rejected(self):
        with self.assertRaisesRegex(InvalidDocument, "string keys"):
            _extjson.encode({1: "a"})
        with self.assertRaisesRegex(InvalidDocument, "NULL"):
            _extjson.encode({"a\x00": 1})
        for value in ({1, 2}, datetime.date(2024, 1, 1), object()):
            with self.assertRaisesRegex(InvalidDocument, "cannot encode object"):
                _extjson.encode({"v": value})
        with self.assertRaises(OverflowError):
            _extjson.encode({"v": 2**63})


if __name__ == "__main__":
    unittest.main()
