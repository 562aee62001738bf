"""``random`` gets its own seed in every instance.

The ``random`` module seeds itself when it is imported, and it is imported when the bundle is
built: its state is part of the pre-initialized memory that every instance starts from. Left
alone, every call of a function would draw the same "random" numbers. ``install`` (run at
build time) replaces the module's functions with ones that, on their first use in an
instance, seed the shared generator from the instance's own entropy (``os.urandom``, the
host's random source) and put the originals back. Calls that never use ``random`` pay
nothing. ``secrets``, ``uuid.uuid4`` and ``os.urandom`` read the host's entropy on every
call already.
"""

import random
from typing import Any, Callable


def install() -> None:
    shared = random._inst  # type: ignore[attr-defined]  # what the module's functions use
    originals = {
        name: value
        for name, value in vars(random).items()
        if callable(value) and getattr(value, "__self__", None) is shared
    }
    seeded = False

    def reseed() -> None:
        nonlocal seeded
        if not seeded:
            seeded = True
            shared.seed()
            for name, original in originals.items():
                setattr(random, name, original)

    def first_use(original: Callable[..., Any]) -> Callable[..., Any]:
        def draw(*args: Any, **kwargs: Any) -> Any:
            reseed()
            return original(*args, **kwargs)

        draw.__name__ = original.__name__
        draw.__doc__ = original.__doc__
        return draw

    for name, original in originals.items():
        setattr(random, name, first_use(original))
