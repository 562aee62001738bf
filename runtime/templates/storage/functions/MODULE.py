"""{{name}}: a to-do list kept in the document store (docs/documents.md).

    wasmfn dev .
    curl -H 'content-type: application/json' -d '{"title": "water the plants"}' \
        http://127.0.0.1:8080/spaces/default/functions/{{name}}/invoke
    curl http://127.0.0.1:8080/spaces/default/functions/{{name}}:{{module}}.items/invoke
"""

from datetime import datetime, timezone

from ixoncdkingress.function.context import FunctionContext


@FunctionContext.expose
def add(context: FunctionContext, title: str = "", **kwargs):
    """Adds an open item; its id is a new ObjectId."""
    if not title.strip():
        raise ValueError('send a title, e.g. {"title": "water the plants"}')
    added_at = datetime.now(timezone.utc).isoformat()
    item = {"title": title.strip(), "done": False, "added_at": added_at}
    inserted = context.document_db_client.insert_one(item)
    return {"id": str(inserted.inserted_id), "title": title.strip()}


@FunctionContext.expose
def items(context: FunctionContext, done: str | None = None, **kwargs):
    """Every item, oldest first; `?done=false` lists the open ones only."""
    query = {} if done is None else {"done": done.lower() in ("1", "true", "yes")}
    found = context.document_db_client.find(query, sort=[("added_at", 1), ("_id", 1)])
    return {"items": [{**item, "_id": str(item["_id"])} for item in found]}
