"""ixoncdkingress 0.0.x's ``cbc`` names, kept for older apps: aliases of ``ixoncdkingress.function``
(removed from the SDK in 1.0; wasmfn keeps them so such apps run unchanged)."""

import warnings

warnings.warn(
    "ixoncdkingress.cbc has been deprecated, please use ixoncdkingress.function",
    DeprecationWarning,
    stacklevel=2,
)
