#!/usr/bin/env python3
"""Measures how the top-level modules of a Rust crate depend on each other.

    python3 scripts/module-graph.py [--edges] [--json] [--no-cycles] [CRATE_SRC_DIR ...]
        (default: every crate of the workspace: manifest, host-apis, core, triggers, runtime)
    python3 scripts/module-graph.py --self-test

Why: the crates depend on each other in one direction only (cargo refuses a cycle between
crates), but the modules inside a crate can still import each other in circles, which is how the
one `runtime` crate of old came to be impossible to split. This counts such cycles, so they can be
measured before and after a change, and with --no-cycles (run by scripts/test.sh on the crates
that have none) fails when one appears.

How it counts:
- A top-level module is `src/X.rs`, or a directory `src/X/` with `mod.rs` or beside `src/X.rs`;
  lib.rs and main.rs are the crate root, not modules. A file included with `#[path = "f.rs"] mod m;`
  belongs to the module that declares it (`manifest_proptests.rs` is part of `manifest`).
- Module A depends on B when some file of A names a path that resolves to `crate::B`:
  `crate::B::f()`, `use crate::{B, c::{d}}`, or `super::` paths that climb to the crate root (an
  inline `mod m { }` is a level too). Comments, doc comments and string literals are ignored;
  names under `crate::` that are not top-level modules (lib.rs re-exports, macros) are ignored.
  Test code (`#[cfg(test)]` modules, property-test files) counts like any other code.

How to read the output:
- "in import cycles": modules in a strongly connected component of more than one module. Every
  module of such a component reaches every other one, so none can go into a lower crate alone.
- "pairs importing each other": A uses B and B uses A: the shortest cycles, first to untangle.
- `--edges` lists every `a -> b` with the first place it is named, to find what to move.
"""

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

TOKEN = re.compile(
    r"""(?P<comment>//[^\n]*)
      | (?P<block>/\*)
      | (?P<raw>[bc]?r(?P<hashes>\#*)")
      | (?P<str>[bc]?"(?:\\.|[^"\\])*")
      | (?P<char>b?'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.)|[^\\'\n])')
      | (?P<lifetime>'[A-Za-z_]\w*)
      | (?P<word>\$?[A-Za-z_]\w*)
      | (?P<punct>::|[^\s\w])
      | (?P<skip>\s+|\w+)""",
    re.VERBOSE | re.DOTALL,
)
BLOCK_ENDS = re.compile(r"/\*|\*/")
IDENT = re.compile(r"[A-Za-z_]\w*")
NOT_A_MODULE = {"self", "super", "crate"}


def tokens(text):
    """The code tokens of a Rust file as (kind, value, offset): comments are dropped, string
    literals become one ("str", contents) token, so neither can be mistaken for a path."""
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        kind, pos = m.lastgroup, m.end()
        if kind == "block":  # block comments nest in Rust
            depth = 1
            while depth:
                end = BLOCK_ENDS.search(text, pos)
                if not end:
                    pos = len(text)
                    break
                depth += 1 if end.group() == "/*" else -1
                pos = end.end()
        elif kind == "raw":
            close = '"' + m.group("hashes")
            end = text.find(close, pos)
            end = len(text) if end < 0 else end
            out.append(("str", text[pos:end], m.start()))
            pos = end + len(close)
        elif kind == "str":
            out.append(("str", m.group()[m.group().index('"') + 1 : -1], m.start()))
        elif kind in ("word", "punct"):
            out.append((kind, m.group(), m.start()))
    return out


def group_heads(toks, k):
    """First names of the items of the `{...}` group opening at toks[k]: `{a::x, b::{y}}` -> a, b"""
    heads, depth, start = [], 0, True
    for kind, v, _ in toks[k:]:
        if kind == "str":
            continue
        if v == "{":
            depth += 1
            start = depth == 1
        elif v == "}":
            depth -= 1
            if depth == 0:
                break
        elif v == "," and depth == 1:
            start = True
        else:
            if start and kind == "word" and v not in NOT_A_MODULE:
                heads.append(v)
            start = False
    return heads


def scan(text):
    """One file's `#[path]` module declarations, plain `mod` declarations and crate-rooted paths.

    A path is (inline mods around it, number of `super`s or None for `crate::`, first names after
    the prefix, line); it is resolved later, once the file's own module path is known."""
    toks = tokens(text)
    val = lambda j: toks[j][1] if 0 <= j < len(toks) and toks[j][0] != "str" else None
    path_decls, mods, refs, inline, depth, attr_path = [], [], [], [], 0, None
    for i, (kind, v, off) in enumerate(toks):
        if kind == "str":
            continue
        if v == "#" and val(i + 1) == "[" and val(i + 2) == "path" and val(i + 3) == "=":
            if i + 4 < len(toks) and toks[i + 4][0] == "str":
                attr_path = toks[i + 4][1]
        elif v == ";" and val(i - 2) == "mod" and IDENT.fullmatch(val(i - 1) or ""):
            names = [name for name, _ in inline]
            mods.append((names, val(i - 1)))
            if attr_path is not None:
                path_decls.append((attr_path, names, val(i - 1)))
        elif v == "{":
            depth += 1
            if val(i - 2) == "mod" and IDENT.fullmatch(val(i - 1) or ""):
                inline.append((val(i - 1), depth))
        elif v == "}":
            if inline and inline[-1][1] == depth:
                inline.pop()
            depth -= 1
        elif v in ("crate", "$crate", "super") and val(i + 1) == "::" and val(i - 1) != "::":
            if val(i - 1) == "in" and val(i - 2) == "(":
                continue  # `pub(in crate::a)` is a visibility, not a use
            ups, j = (1 if v == "super" else None), i + 1
            while ups and val(j) == "::" and val(j + 1) == "super":
                ups, j = ups + 1, j + 2
            nxt = val(j + 1) if val(j) == "::" else None
            names = group_heads(toks, j + 1) if nxt == "{" else [nxt] if nxt else []
            names = [n for n in names if IDENT.fullmatch(n) and n not in NOT_A_MODULE]
            line = text.count("\n", 0, off) + 1
            refs.append(([name for name, _ in inline], ups, names, line))
        if v in (";", "{", "}"):
            attr_path = None
    return path_decls, mods, refs


def module_paths(src):
    """Each .rs file of the crate with its module path from the crate root: src/a/b.rs -> [a, b]"""
    files = {}
    for f in sorted(src.rglob("*.rs")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        top = parts[0]
        if len(parts) > 1 and not ((src / top / "mod.rs").exists() or (src / f"{top}.rs").exists()):
            continue  # src/bin/ and the like: other crates
        if parts in (["lib"], ["main"]):
            parts = []
        files[f] = parts[:-1] if parts and parts[-1] == "mod" else parts
    return files


def analyse(src):
    """The module graph of the crate whose sources are in `src`, as a JSON-ready dict."""
    src = Path(src).resolve()
    files = module_paths(src)
    scans = {f: scan(f.read_text(encoding="utf-8", errors="replace")) for f in files}
    for _ in range(len(files)):  # `#[path]` files take the module path of their declaration
        changed = False
        for f, (path_decls, _, _) in scans.items():
            for attr, inline, name in path_decls:  # where rustc looks, per the Rust reference
                mod_rs = f.name in ("mod.rs", "lib.rs", "main.rs") or not inline
                base = (f.parent if mod_rs else f.parent / f.stem).joinpath(*inline)
                target, want = (base / attr).resolve(), files[f] + inline + [name]
                if target in files and files[target] != want:
                    files[target], changed = want, True
        if not changed:
            break
    modules = sorted({p[0] for p in files.values() if p})
    edges = {}  # (from, to) -> where it is first named
    for f, (_, _, refs) in scans.items():
        if not files[f]:
            continue
        for inline, ups, names, line in refs:
            here = files[f] + inline
            if ups is not None and ups > len(here):
                continue  # climbs above the crate root: not valid Rust, nothing to count
            base = [] if ups is None else here[: len(here) - ups]
            for target in [base[0]] if base else names:
                if target in modules and target != here[0]:
                    edges.setdefault((here[0], target), f"{f.relative_to(src)}:{line}")
    succ = {m: sorted(b for a, b in edges if a == m) for m in modules}
    cycles = [c for c in strongly_connected(modules, succ) if len(c) > 1]
    cycles.sort(key=lambda c: (-len(c), c))
    pairs = sorted([a, b] for a, b in edges if a < b and (b, a) in edges)
    root = next((f for f in (src / "lib.rs", src / "main.rs") if f in scans), None)
    declared = {name for inline, name in (scans[root][1] if root else []) if not inline}
    return {
        "src": str(src),
        "module_count": len(modules),
        "modules": modules,
        "modules_in_cycles": sum(map(len, cycles)),
        "cycles": cycles,
        "biggest_cycle": cycles[0] if cycles else [],
        "mutual_pair_count": len(pairs),
        "mutual_pairs": pairs,
        "edges": [[a, b, where] for (a, b), where in sorted(edges.items())],
        "not_declared_in_root": sorted(set(modules) - declared) if root else [],
    }


def strongly_connected(nodes, succ):
    """Tarjan's algorithm, iterative so that long chains do not hit Python's recursion limit."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(succ[root]))]
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while not comp or comp[-1] != v:
                        comp.append(stack.pop())
                        on_stack.discard(comp[-1])
                    comps.append(sorted(comp))
    return comps


def report(r, show_edges):
    n = r["module_count"]
    print(f"{r['src']}\n  top-level modules: {n}")
    cycles = f"{r['modules_in_cycles']} of {n} ({len(r['cycles'])} cycle(s))"
    print(f"  modules in import cycles: {cycles}")
    if r["biggest_cycle"]:
        print(f"  biggest cycle ({len(r['biggest_cycle'])}): {', '.join(r['biggest_cycle'])}")
    print(f"  pairs importing each other: {r['mutual_pair_count']}")
    for a, b in r["mutual_pairs"]:
        print(f"    {a} <-> {b}")
    print(f"  edges: {len(r['edges'])}")
    for a, b, where in r["edges"] if show_edges else []:
        print(f"    {a} -> {b}  ({where})")
    if r["not_declared_in_root"]:
        stray = ", ".join(r["not_declared_in_root"])
        print(f"  note: on disk but not declared in the crate root: {stray}")


SELF_TEST_CRATE = {
    "lib.rs": "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n",
    "a.rs": """//! Unlike crate::c, this module uses b.
/// See crate::c::x.
use crate::b::Thing;
/* outer /* nested */ crate::c::gone() */
#[cfg(test)]
#[path = "a_props.rs"]
mod props;
pub fn f<'a>(s: &'a str) -> &'a str {
    let (_q, _s, _r) = ('"', "crate::c", r#"crate::c "q""#);
    s
}
mod inner { fn g() { super::c::not_crate_c(); } }
""",
    "a_props.rs": "use super::c; // super is a: this is a::c, and a_props is not a module\n",
    "c.rs": "pub fn x() {}\n",
    "b/mod.rs": "pub mod inner;\npub struct Thing;\npub mod c {}\n",
    "b/inner.rs": "pub mod deeper;\nuse super::super::a::f;\n",
    "b/inner/deeper.rs": "pub fn h() { super::super::c::x(); } // b::c, not crate::c\n",
    "d.rs": """use crate::{b::{c, inner::{deeper}, Thing}}; // b::c is not crate::c
pub(in crate::d) fn e() { for _ in crate::a::f("") {} }
""",
    "bin/tool.rs": "use crate::c; // another crate\n",
}


def self_test():
    """Builds a small fake crate covering the counting rules and checks the results."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in SELF_TEST_CRATE.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_text(text)
        r = analyse(tmp)
    expected = {
        "modules": ["a", "b", "c", "d"],
        "edges": [["a", "b"], ["b", "a"], ["d", "a"], ["d", "b"]],
        "cycles": [["a", "b"]],
        "modules_in_cycles": 2,
        "mutual_pairs": [["a", "b"]],
        "not_declared_in_root": [],
    }
    got = dict(r, edges=[e[:2] for e in r["edges"]])
    failed = {k: got[k] for k, v in expected.items() if got[k] != v}
    for k, v in failed.items():
        print(f"self-test FAILED: {k} is {v}, expected {expected[k]}")
    print("self-test failed" if failed else "self-test passed")
    return 1 if failed else 0


def main():
    doc_head, doc_rest = __doc__.split("\n", 1)
    parser = argparse.ArgumentParser(
        description=doc_head, epilog=doc_rest, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    root = Path(__file__).resolve().parent.parent
    default = [str(root / crate / "src") for crate in ("manifest", "host-apis", "core", "triggers", "runtime")]
    parser.add_argument(
        "src", nargs="*", default=default, help="a crate's src directory (default: every crate)"
    )
    parser.add_argument(
        "--no-cycles", action="store_true", help="exit 1 when a module of these crates is in a cycle"
    )
    parser.add_argument("--edges", action="store_true", help="also list every edge a -> b")
    parser.add_argument("--json", action="store_true", help="a JSON object keyed by src directory")
    parser.add_argument("--self-test", action="store_true", help="check the rules on a fake crate")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    for src in args.src:
        if not Path(src, "lib.rs").exists() and not Path(src, "main.rs").exists():
            parser.error(f"{src} has no lib.rs or main.rs: not a crate's src directory")
    results = [analyse(src) for src in args.src]
    if args.json:
        print(json.dumps({src: r for src, r in zip(args.src, results)}, indent=2))
    else:
        for r in results:
            report(r, args.edges)
    if args.no_cycles:
        tangled = [src for src, r in zip(args.src, results) if r["modules_in_cycles"]]
        for src in tangled:
            print(f"module-graph: {src} has modules in an import cycle (see above)", file=sys.stderr)
        return 1 if tangled else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
