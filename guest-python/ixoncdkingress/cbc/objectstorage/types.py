"""The 0.0.x path of the object storage types."""

import ixoncdkingress.cbc  # noqa: F401 - warns that the names are deprecated
from ixoncdkingress.function.objectstorage.types import (
    ListPathResponse,
    PathData,
    PathMapping,
    PathResponse,
    ResourceType,
)

__all__ = ["ListPathResponse", "PathData", "PathMapping", "PathResponse", "ResourceType"]
