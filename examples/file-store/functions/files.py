"""Upload, list and download files in the space's object storage (context.object_storage, a
wasmfn extension: IXON's SDK has no object storage client)."""

from ixoncdkingress.function.context import FunctionContext
from wasmfn import Response
from wasmfn.objects import ObjectNotFound


@FunctionContext.expose
def upload(context: FunctionContext, name: str, content: str, content_type: str = "text/plain", **kwargs):
    """Stores `content` as uploads/<name>; returns its size and a 5-minute download link."""
    storage = context.object_storage
    info = storage.put(f"uploads/{name}", content.encode("utf-8"), content_type=content_type,
                       metadata={"uploaded-by": context.user.name if context.user else "anonymous"})
    return {
        "key": info.key,
        "size": info.size,
        "download_url": storage.presigned_url(info.key, expires_in=300),
    }


@FunctionContext.expose
def download(context: FunctionContext, name: str, **kwargs):
    """The file's bytes with its content type, or 404."""
    try:
        stored = context.object_storage.get(f"uploads/{name}")
    except ObjectNotFound:
        return Response({"error": f"no file named {name}"}, status=404)
    return Response(stored.data, content_type=stored.info.content_type)


@FunctionContext.expose
def files(context: FunctionContext, **kwargs):
    """Every uploaded file: name, size and content type."""
    return {
        "files": [
            {"name": info.key.removeprefix("uploads/"), "size": info.size, "content_type": info.content_type}
            for info in context.object_storage.iter("uploads/")
        ]
    }


@FunctionContext.expose
def remove(context: FunctionContext, name: str, **kwargs):
    """Deletes the file; says whether there was one."""
    return {"deleted": context.object_storage.delete(f"uploads/{name}")}
