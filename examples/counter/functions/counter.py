"""A named counter and a guest book in the document store (context.document_db_client).

The same code runs on IXON Cloud Functions: only DocumentDBClient methods of ixoncdkingress
are used, and pymongo's DuplicateKeyError is what both raise.
"""

from pymongo.errors import DuplicateKeyError

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def increment(context: FunctionContext, name: str = "visits", **kwargs):
    """Adds one to counter `name` and returns its new value."""
    db = context.document_db_client
    if db.update_one({"_id": name}, {"$inc": {"count": 1}}).matched_count == 0:
        try:
            db.insert_one({"_id": name, "count": 1})
        except DuplicateKeyError:
            # Another call created it first: count this one too.
            db.update_one({"_id": name}, {"$inc": {"count": 1}})
    return {"name": name, "count": db.find_one(filter_map={"_id": name})["count"]}


@FunctionContext.expose
def counters(context: FunctionContext, **kwargs):
    """Every counter, highest first."""
    db = context.document_db_client
    found = db.find({"count": {"$exists": True}}, sort=[("count", -1), ("_id", 1)])
    return {"counters": [{"name": doc["_id"], "count": doc["count"]} for doc in found]}


@FunctionContext.expose
def sign(context: FunctionContext, author: str, text: str, **kwargs):
    """Adds a guest book entry; its id is a new ObjectId."""
    entry = {"kind": "note", "author": author, "text": text, "likes": 0}
    inserted = context.document_db_client.insert_one(entry)
    return {"id": str(inserted.inserted_id)}


@FunctionContext.expose
def notes(context: FunctionContext, author: str | None = None, **kwargs):
    """Guest book entries, newest first, optionally by one author."""
    query = {"kind": "note"}
    if author is not None:
        query["author"] = author
    found = context.document_db_client.find(query, projection={"kind": 0}).sort("_id", -1)
    return {"notes": [{**doc, "_id": str(doc["_id"])} for doc in found]}
