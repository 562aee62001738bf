#!/usr/bin/env python3
"""What a call writes into a CPython bundle's memory image, by kind of object.

Runs `wasmfn bench BUNDLE --live N` (N instances made, then each called once, all held), stops
the process (SIGSTOP) once its private memory passes --stop-at-mib, and looks at the memory of
the instances it holds: for the `--sample` slots with the most dirty pages (the called ones),
each page of the memory image that is no longer the `.cwasm` file's (pagemap: present, not a
file page) is compared word by word with the file, and each changed word is put in the object
of the immortal-heap table (guest-python/wasmfn/_heap.py, written by `wasmfn build`) that it
falls in, with the type's name read from the image. Then the process goes on and ends.

Linux only, and as a user who may read the process's pagemap and memory (root, or the same
user with ptrace allowed). Attribution is approximate: a word is given to the nearest listed
object that starts before it (or up to 16 bytes after, for the garbage collector's header), so
a new object the call made in a free slot next to a listed one counts as that one's type at a
large offset; "(not in a listed object)" is everything else (allocator state, stacks, statics).

    python3 benches/memory/writes.py target/release/wasmfn dist/hello-world-1.0.0.wasm \\
        --cache-dir /tmp/compiled --live 1000 --stop-at-mib 950
"""

import argparse
import bisect
import collections
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

PAGE = 4096
# wasmfn/_heap.py's table: its marker, then the count written and the number of addresses.
MARKER = hashlib.sha256(b"wasmfn immortal heap table, v1").digest()[:16]
# CPython 3.14's immortal count on 32-bit platforms, which `wasmfn build` writes.
IMMORTAL_REFCNT = 5 << 28
NOT_LISTED = "(not in a listed object)"
UNCHANGED = "(page copied, nothing in it changed)"


def private_dirty_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1])
    return 0


def image_mappings(pid: int) -> list[tuple[int, int, int, str]]:
    """The writable mappings of a .cwasm (one per memory slot): start, end, file offset, path."""
    found = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and parts[5].endswith(".cwasm") and "w" in parts[1]:
                start, end = (int(x, 16) for x in parts[0].split("-"))
                found.append((start, end, int(parts[2], 16), parts[5]))
    return found


def dirty_pages(pagemap: int, start: int, end: int) -> list[int]:
    """Indexes of the pages of [start, end) that are present and no longer the file's."""
    count = (end - start) // PAGE
    data = os.pread(pagemap, count * 8, (start // PAGE) * 8)
    pages = []
    for i in range(count):
        entry = struct.unpack_from("<Q", data, i * 8)[0]
        if entry >> 63 & 1 and not entry >> 61 & 1:
            pages.append(i)
    return pages


def heap_table(cwasm: bytes, start: int) -> list[int]:
    """The sorted object addresses of the immortal-heap table (the copy whose checksum holds)."""
    at = cwasm.find(MARKER, start)
    while at >= 0:
        _, count = struct.unpack_from("<II", cwasm, at + 16)
        end = at + 24 + 4 * count
        if count and end + 8 <= len(cwasm) and hashlib.sha256(cwasm[at:end]).digest()[:8] == cwasm[end:end + 8]:
            return sorted(struct.unpack_from(f"<{count}I", cwasm, at + 24))
        at = cwasm.find(MARKER, at + 1)
    return []


def image_base(cwasm: bytes, image_offset: int, addresses: list[int]) -> int | None:
    """The memory address of the image's first byte: the one at which listed objects carry the
    immortal count."""
    probes = addresses[:: max(1, len(addresses) // 200)]
    best, best_hits = None, 0
    for base in range(0, 64 << 20, PAGE):
        hits = 0
        for address in probes:
            at = image_offset + address - base
            if image_offset <= at <= len(cwasm) - 4 and struct.unpack_from("<I", cwasm, at)[0] == IMMORTAL_REFCNT:
                hits += 1
        if hits > best_hits:
            best, best_hits = base, hits
    return best if best_hits * 2 > len(probes) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wasmfn", type=Path)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--cache-dir", type=Path, required=True,
                        help="compile cache for the bench (reused between runs)")
    parser.add_argument("--live", type=int, default=1000)
    parser.add_argument("--stop-at-mib", type=int, required=True,
                        help="stop the bench when its private memory passes this (pick it "
                             "between the process with the instances made and with them called)")
    parser.add_argument("--entry", help="the exposed function to call (default: the bundle's default entry)")
    parser.add_argument("--sample", type=int, default=20, help="called slots to read")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--objects", metavar="KIND",
                        help="also list the addresses of the written objects of this kind "
                             "(e.g. code), most written first, to look them up in the image")
    args = parser.parse_args()

    bench = subprocess.Popen(
        [str(args.wasmfn), "bench", str(args.bundle), "--builds", "0", "--compiles", "0",
         "--runs", "1", "--seconds", "0", "--live", str(args.live),
         "--max-instances", str(args.live + 100), "--max-memory-mb", "256",
         "--cache-dir", str(args.cache_dir)] + (["--entry", args.entry] if args.entry else []),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while private_dirty_kib(bench.pid) < args.stop_at_mib * 1024:
            if bench.poll() is not None:
                print(f"the bench ended below {args.stop_at_mib} MiB", file=sys.stderr)
                return 1
            time.sleep(0.002)
        os.kill(bench.pid, signal.SIGSTOP)
        report(bench.pid, args)
    finally:
        if bench.poll() is None:
            os.kill(bench.pid, signal.SIGCONT)
            bench.wait()
    return 0


def report(pid: int, args: argparse.Namespace) -> None:
    mappings = image_mappings(pid)
    if not mappings:
        raise SystemExit("no .cwasm mapping: is the bundle's memory image mapped from the cache?")
    cwasm = Path(mappings[0][3]).read_bytes()
    pagemap = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    memory = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    slots = sorted(((start, offset, dirty_pages(pagemap, start, end)) for start, end, offset, _ in mappings),
                   key=lambda slot: -len(slot[2]))[: args.sample]
    image_offset = min(offset for _, offset, _ in slots)
    addresses = heap_table(cwasm, image_offset)
    base = image_base(cwasm, image_offset, addresses) if addresses else None
    if base is None:
        raise SystemExit("no immortal-heap table in the image (a bundle not built by `wasmfn build`?)")

    def word(address: int) -> int:
        at = image_offset + address - base
        return struct.unpack_from("<I", cwasm, at)[0] if image_offset <= at <= len(cwasm) - 4 else 0

    names: dict[int, str] = {}

    def type_name(obj: int) -> str:
        tp = word(obj + 4)  # ob_type; a type's tp_name pointer is at +12 (32-bit)
        if tp not in names:
            at = image_offset + word(tp + 12) - base
            names[tp] = cwasm[at:at + 64].split(b"\0")[0].decode("latin1") if tp else "?"
        return names[tp]

    words, pages = collections.Counter(), collections.defaultdict(set)
    offsets: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    written: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for start, offset, dirty in slots:
        for index in dirty:
            now = os.pread(memory, PAGE, start + index * PAGE)
            was = cwasm[offset + index * PAGE: offset + (index + 1) * PAGE]
            changed = [w for w in range(0, len(was) - 3, 4) if now[w:w + 4] != was[w:w + 4]]
            if not changed:
                words[UNCHANGED] += 1
                pages[UNCHANGED].add((start, index))
            for w in changed:
                address = base + offset - image_offset + index * PAGE + w
                k = bisect.bisect_right(addresses, address + 16) - 1
                kind = NOT_LISTED
                if k >= 0:
                    obj = addresses[k]
                    following = addresses[k + 1] if k + 1 < len(addresses) else obj + PAGE
                    if address < obj + 64 or address < following - 16:
                        kind = type_name(obj)
                        offsets[kind][address - obj] += 1
                        written[kind][obj] += 1
                words[kind] += 1
                pages[kind].add((start, index))
    n = len(slots)
    total = sum(len(dirty) for _, _, dirty in slots) / n
    print(f"{n} called instances read: {total:.0f} dirty pages of the image each "
          f"({len(addresses)} listed objects; the image starts at memory address {base:#x})")
    print(f"{'pages':>7} {'words':>8}  kind  [most written offsets: count]")
    for kind, count in words.most_common(args.top):
        top = ", ".join(f"{o:+d}: {c}" for o, c in offsets[kind].most_common(4))
        print(f"{len(pages[kind]) / n:7.1f} {count / n:8.1f}  {kind}  [{top}]")
    if args.objects:
        print(f"written {args.objects} objects (address: words per instance):")
        for obj, count in written[args.objects].most_common():
            print(f"  {obj:#x}: {count / n:.1f}")


if __name__ == "__main__":
    sys.exit(main())
