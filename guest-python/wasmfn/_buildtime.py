"""Whether a build-time warm-up call is running (function.toml ``[[warmup]]``).

While the bundle is pre-initialized nothing is there to answer the host's interfaces (a call
to one would stop the build with a trap), so what would call the host checks
:func:`refuse` first and raises a clear error instead.
"""

ACTIVE = False


class NotAtBuildTime(RuntimeError):
    """A host service was used by a ``[[warmup]]`` call, at build time."""


def refuse(service: str) -> None:
    """Raises :class:`NotAtBuildTime` for ``service`` during a warm-up call."""
    if ACTIVE:
        raise NotAtBuildTime(
            f"{service} is not available during a build-time warm-up call "
            "(function.toml [[warmup]]); set ignore_errors = true on the call, or warm up "
            "with arguments that do not reach it"
        )
