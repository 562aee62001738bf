"""benches/documents: the document-store pattern of a maintenance logbook, once per call.

Each call picks three of LOGBOOKS logbooks (one per asset) and
  1. reads them with one `find({"_id": {"$in": [...]}})` (creating any that do not exist yet,
     so the store seeds itself on the first calls, on every system),
  2. appends a note to the first with `$push` (`$each` + `$slice`: a logbook keeps its last
     MAX_NOTES notes),
  3. marks that note read with a positional update (`{"notes.id": ...}`, `"notes.$.status"`).
It answers what each step matched, so a load generator that checks the body sees partial work.
The same file runs in wasmfn (sled or PostgreSQL) and in CPython (mongomock).
"""

import random
import uuid

from ixoncdkingress.function.context import FunctionContext
from pymongo.errors import DuplicateKeyError

LOGBOOKS = 200
MAX_NOTES = 20
PICK = 3


def _logbook_id(index: int) -> str:
    return f"logbook-{index:04d}"


@FunctionContext.expose
def add_note(context: FunctionContext, text: str = "checked the pump, all fine", **kwargs):
    db = context.document_db_client
    ids = [_logbook_id(i) for i in random.sample(range(LOGBOOKS), PICK)]

    found = {doc["_id"] for doc in db.find({"_id": {"$in": ids}}, {"asset": 1})}
    for missing in ids:
        if missing not in found:
            try:
                db.insert_one({"_id": missing, "asset": missing.replace("logbook", "asset"),
                               "notes": []})
            except DuplicateKeyError:
                pass  # a concurrent call created it first

    note = {"id": uuid.uuid4().hex, "text": str(text)[:200], "status": "new"}
    pushed = db.update_one(
        {"_id": ids[0]}, {"$push": {"notes": {"$each": [note], "$slice": -MAX_NOTES}}})
    marked = db.update_one(
        {"_id": ids[0], "notes.id": note["id"]}, {"$set": {"notes.$.status": "read"}})
    return {"read": len(found), "pushed": pushed.modified_count,
            "marked": marked.modified_count}
