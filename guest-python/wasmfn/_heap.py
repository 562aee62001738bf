"""The pre-initialized heap, marked for ``wasmfn build`` to make immortal.

Every instance starts from the memory the build left (pre-initialization) and serves one
call. CPython counts references by writing into each object it touches (``Py_INCREF`` /
``Py_DECREF``), so a call that reads a module's functions, strings and classes writes to every
page they lie on: the instance gets a private copy of each such page (a copy-on-write fault),
and the host copies it back from the image when the instance ends. Objects CPython knows to
live forever (``None``, small ints, interned identifiers: PEP 683's immortal objects) are not
counted, so their pages are only read.

``publish`` (run last at build time, after ``gc.collect``) finds every object the heap holds
(the cyclic collector's objects and all they refer to) and leaves their addresses in one bytes
object, a table behind a marker. After componentize-py wrote the component, ``wasmfn build``
finds the table in the memory image and writes the immortal reference count into each of
those objects (runtime/src/python_build/immortal.rs), which CPython then leaves alone. They
were going to live as long as the instance anyway; the objects a call makes are counted as
always. The objects listed are kept alive (``_KEEP``), so no address in the table is reused by
another object before the image is taken.

``fill_holes`` (run after it, once ``gc.collect`` emptied CPython's free lists) fills the free
chunks the build left all over the heap, so that what a call allocates lies together.

The table: the marker (16 bytes), the immortal reference count (u32), the number of addresses
(u32), the addresses (u32 each, little-endian), then the first 8 bytes of the SHA-256 of
everything before them.
"""

import gc
import hashlib
import struct
import sys
import types

# The marker: made here rather than written as one constant, so that the only copy of it in the
# heap is the table's (a constant would be one more, in this module's code object).
_MARKER = hashlib.sha256(b"wasmfn immortal heap table, v1").digest()[:16]

# CPython 3.14 on 32-bit platforms: _Py_IMMORTAL_INITIAL_REFCNT (5 << 28); any count from
# 1 << 30 up is immortal. Other versions or word sizes publish nothing.
_IMMORTAL_REFCNT = 5 << 28

_KEEP: list = []
TABLE = b""


def _code_parts(code: types.CodeType) -> tuple:
    """What a code object holds that ``gc.get_referents`` does not return (code objects are
    not tracked by the collector)."""
    return (
        code.co_consts,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_filename,
        code.co_name,
        code.co_qualname,
        code.co_linetable,
        code.co_exceptiontable,
    )


def _objects() -> list:
    """Every object reachable from the collector's objects and the modules, each once,
    immortal ones left out."""
    is_immortal = sys._is_immortal  # type: ignore[attr-defined]  # new in 3.14
    # The walk's own containers are made after the collector's list, so they are not in it.
    pending = gc.get_objects()
    pending.append(sys.modules)
    seen: set = set()
    found: list = []
    while pending:
        item = pending.pop()
        key = id(item)
        if key in seen:
            continue
        seen.add(key)
        # Immortal already (None, small ints, interned names, the built-in types): not listed,
        # but what they hold may not be (the method descriptors of a built-in type's dict).
        if not is_immortal(item):
            found.append(item)
        pending.extend(gc.get_referents(item))
        if type(item) is types.CodeType:
            pending.extend(_code_parts(item))
        elif isinstance(item, type):
            # A built-in type is not tracked by the collector: its dict is reached this way.
            pending.append(vars(item))
    return found


def publish() -> None:
    """Leaves the table in ``TABLE``; nothing where the platform is not the one it is made for."""
    global TABLE
    if (
        sys.version_info[:2] != (3, 14)
        or sys.maxsize != 2**31 - 1
        or not hasattr(sys, "_is_immortal")
    ):
        return
    found = _objects()
    _KEEP.extend(found)
    addresses = [id(item) for item in found]
    head = _MARKER + struct.pack("<II", _IMMORTAL_REFCNT, len(addresses))
    body = head + struct.pack(f"<{len(addresses)}I", *addresses)
    TABLE = body + hashlib.sha256(body).digest()[:8]


# The allocator's holes are filled with bytes objects of these sizes (bytes objects are never
# shared at these lengths and never looked at by the collector): every small size a chunk
# can have, then larger ones in steps, so that a call's small objects find no hole to fit in.
_HOLE_SIZES = tuple(range(24, 256, 8)) + (256, 320, 384, 448, 512, 640, 768, 1024, 1536, 2048,
                                         3072, 4096)
_FILLERS_MAX = 1 << 17
_PASSES = 8

FILLERS: list = []


def fill_holes() -> int:
    """Fills the free chunks the build left in the heap with objects kept for the instance's
    life (``FILLERS``); answers how many were made. Run last at build time, after
    ``gc.collect`` emptied CPython's free lists.

    **Why.** CPython's objects come from wasi-libc's malloc (dlmalloc; this build has no
    pymalloc), which serves a small request from a freed chunk of that size first, wherever it
    lies. The pre-initialized heap is full of such holes, everything the build freed, spread over
    the whole memory image: a call's forty new objects of one size lay on about 35
    different pages, each then a private copy for the instance. With the holes filled, a call's
    new objects are carved one after the other from what is left: a few pages.

    How: for each size, bytes objects are made until two in a row lie next to each other
    (carved from free space, not found in a hole); filling one size can leave a smaller hole,
    so the sizes are gone through again until none finds a hole.
    """
    if sys.maxsize != 2**31 - 1 or sys.getallocatedblocks() != 0:
        return 0  # not the 32-bit build with wasi-libc's malloc the sizes are chosen for
    global FILLERS
    header = sys.getsizeof(b"")
    # Sized once: a list that grew would free its old items, one more hole.
    FILLERS = [None] * _FILLERS_MAX
    made = 0
    for _ in range(_PASSES):
        found_holes = False
        for size in _HOLE_SIZES:
            length = size - header
            previous = 0
            while made < _FILLERS_MAX:
                item = bytes(length)
                FILLERS[made] = item
                made += 1
                address = id(item)
                if 0 < address - previous <= size + 32:
                    break
                if previous:
                    found_holes = True
                previous = address
        if not found_holes:
            break
    del FILLERS[made:]
    return made
