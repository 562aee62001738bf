"""``CbcContext`` and ``CbcResource``: the 0.0.x names of ``FunctionContext`` and ``FunctionResource``."""

import ixoncdkingress.cbc  # noqa: F401 - warns that the names are deprecated
from ixoncdkingress.function.context import FunctionContext, FunctionResource

CbcContext = FunctionContext
CbcResource = FunctionResource

__all__ = ["CbcContext", "CbcResource", "FunctionContext", "FunctionResource"]
