"""``TimeSeriesClient``: importable as in ixoncdkingress, but wasmfn has no time series store, so
``context.time_series_client`` is always None and this class cannot be made."""

from collections.abc import Mapping
from typing import Any


class TimeSeriesClient:
    """The SDK's experimental time series client; not available in wasmfn."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("wasmfn has no time series store (context.time_series_client is None)")

    def aggregate(self, pipeline: list[Mapping[str, object]]) -> Any:
        raise NotImplementedError("wasmfn has no time series store")
