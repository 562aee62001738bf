"""``random`` gets its own seed in every instance.

The ``random`` module seeds itself when it is imported, and it is imported when the bundle is
built: its state is part of the pre-initialized memory that every instance starts from. Left
alone, every call of a function would draw the same "random" numbers. ``install`` (run at
build time) replaces the module's functions with ones that, on their first use in an
instance, seed the shared generator from the instance's own entropy (``os.urandom``, the
host's random source) and put the originals back. Calls that never use ``random`` pay
nothing. ``secrets``, ``uuid.uuid4`` and ``os.urandom`` read the host's entropy on every
call already.

componentize-py's runtime calls ``random.seed()`` itself before each instance's first call (it
took ``random.seed`` after importing the modules, so it holds the replacement made here). A
``seed()`` without a seed asks for what the first draw does anyway, so it is left to the first
draw: otherwise every instance would seed twice (~600 words of entropy and the generator's
set-up, each time) before any call, whether it draws or not. ``seed(a)`` with a seed seeds at
once, as it says.
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

    def seed_later(original: Callable[..., Any]) -> Callable[..., Any]:
        def seed(a: Any = None, *args: Any, **kwargs: Any) -> Any:
            if a is None and not args and not kwargs:
                return None  # from entropy: the first draw does it (see the module's doc)
            reseed()
            return original(a, *args, **kwargs)

        seed.__doc__ = original.__doc__
        return seed

    for name, original in originals.items():
        wrap = seed_later if name == "seed" else first_use
        setattr(random, name, wrap(original))
