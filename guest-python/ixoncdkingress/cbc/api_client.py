"""The 0.0.x path of ``ApiClient``."""

import ixoncdkingress.cbc  # noqa: F401 - warns that the names are deprecated
from ixoncdkingress.function.api_client import ApiClient

__all__ = ["ApiClient"]
