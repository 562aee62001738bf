"""The 0.0.x path of the Document DB client names."""

import ixoncdkingress.cbc  # noqa: F401 - warns that the names are deprecated
from ixoncdkingress.function.document_db_client import (
    TIMEOUT,
    DocumentDBAuthentication,
    DocumentDBClient,
    DocumentType,
)

__all__ = ["DocumentDBAuthentication", "DocumentDBClient", "DocumentType", "TIMEOUT"]
