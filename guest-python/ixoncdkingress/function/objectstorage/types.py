"""Response shapes of object-storage authorisation functions (``authorize_upload`` and the like),
as ixoncdkingress names them: the function answers which storage path a caller may use."""

from enum import Enum
from typing import Literal, TypedDict


class ResourceType(str, Enum):
    ASSET = "Asset"
    AGENT = "Agent"


class PathData(TypedDict):
    path: str


class PathMapping(TypedDict):
    publicId: str | None
    path: str
    type: ResourceType


class PathResponse(TypedDict):
    result: Literal["success"]
    data: PathData


class ListPathResponse(TypedDict):
    result: Literal["success"]
    data: list[PathMapping]
