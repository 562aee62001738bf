"""Writes the CPython headers a C extension for the bundles' CPython is compiled against.

    python3 scripts/wasi_pyconfig.py COMPONENTIZE_PY_WHEEL HEADERS_DIR OUT_DIR

COMPONENTIZE_PY_WHEEL is componentize-py's wheel (the one wasmfn builds bundles with);
HEADERS_DIR is CPython's include directory of the same minor version for any platform (the one
Debian's libpython3.14-dev installs, /usr/include/python3.14, with its pyconfig.h under
/usr/include/<triplet>/python3.14/). OUT_DIR/python3.14 gets the headers, with a pyconfig.h for
the bundles' CPython in place of the build machine's one.

Only pyconfig.h depends on the platform (type sizes, which libc functions exist, build
options). componentize-py carries the CPython it embeds (libpython, the standard library) as
zstd-compressed blobs inside its binary, and the standard library has
`_sysconfigdata__wasi_wasm32-wasi.py`, where CPython's build wrote down every pyconfig.h value
it was built with. Each macro of the build machine's pyconfig.h is written with that value.
"""

import re
import shutil
import subprocess
import sys
import tarfile
import io
import zipfile
from pathlib import Path

SYSCONFIGDATA = re.compile(r"(^|/)_sysconfigdata_+wasi_wasm32-wasi[^/]*\.py$")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# pyconfig.h macros sysconfig does not record (it keeps only names that start with a capital
# letter), with the values CPython's configure gives them on WASI.
UNRECORDED = {
    "_POSIX_C_SOURCE": "200809L",
    "_XOPEN_SOURCE": "700",
    "_XOPEN_SOURCE_EXTENDED": "1",
    "_DARWIN_C_SOURCE": "1",
    "_NETBSD_SOURCE": "1",
    "__BSD_VISIBLE": "1",
    "_LARGEFILE_SOURCE": "1",
    "_FILE_OFFSET_BITS": "64",
    "_REENTRANT": "1",
    "_Py_STACK_GROWS_DOWN": "1",
    # wasi-libc refuses <signal.h> and friends without these.
    "_WASI_EMULATED_GETPID": "1",
    "_WASI_EMULATED_PROCESS_CLOCKS": "1",
    "_WASI_EMULATED_SIGNAL": "1",
}


def sysconfig_vars(wheel: Path) -> dict:
    """build_time_vars of the WASI CPython embedded in componentize-py's binary."""
    with zipfile.ZipFile(wheel) as archive:
        binary = next(
            (n for n in archive.namelist() if re.search(r"componentize_py[^/]*\.(so|pyd)$", n)),
            None,
        )
        if binary is None:
            sys.exit(f"wasi_pyconfig: no componentize-py binary in {wheel}")
        data = archive.read(binary)
    start = 0
    while (start := data.find(ZSTD_MAGIC, start)) >= 0:
        # zstd decompresses the frame at `start` (and any that follow it) and stops with an
        # error at the first bytes that are not a frame; what it decoded up to there is kept.
        out = subprocess.run(
            ["zstd", "-d", "-c", "-q"], input=data[start:], capture_output=True
        ).stdout
        start += len(ZSTD_MAGIC)
        if out[257:262] != b"ustar":
            continue
        try:
            with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
                for member in tar:
                    if SYSCONFIGDATA.search(member.name):
                        source = tar.extractfile(member).read().decode()
                        namespace: dict = {}
                        exec(compile(source, member.name, "exec"), namespace)
                        return namespace["build_time_vars"]
        except tarfile.TarError:
            continue
    sys.exit(f"wasi_pyconfig: no WASI sysconfig data in {wheel}'s binary")


def pyconfig(template: str, values: dict) -> str:
    lines = ["/* pyconfig.h of componentize-py's CPython for wasm32-wasi, written by wasmfn's",
             "   scripts/wasi_pyconfig.py from its sysconfig data. */",
             "#ifndef Py_PYCONFIG_H", "#define Py_PYCONFIG_H"]
    seen = set()
    for line in template.splitlines():
        found = re.match(r"\s*#\s*define\s+(\w+)", line) or re.match(
            r"\s*/\*\s*#\s*undef\s+(\w+)\s*\*/", line)
        if found is None or found.group(1) in seen or found.group(1) == "Py_PYCONFIG_H":
            continue
        name = found.group(1)
        seen.add(name)
        if name in UNRECORDED:
            lines.append(f"#define {name} {UNRECORDED[name]}")
        elif name not in values or values[name] == 0:
            # Not recorded (type fallbacks such as `size_t`, macOS/BSD-only names) or off.
            lines.append(f"/* #undef {name} */")
        else:
            lines.append(f"#define {name} {values[name]}")
    for name, value in UNRECORDED.items():
        if name not in seen:
            lines.append(f"#define {name} {value}")
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    wheel, headers, out = (Path(a) for a in sys.argv[1:])
    values = sysconfig_vars(wheel)
    version = values.get("VERSION")
    if headers.name != f"python{version}":
        sys.exit(f"wasi_pyconfig: the headers in {headers} are not CPython {version}'s")
    if values.get("SIZEOF_VOID_P") != 4 or values.get("Py_GIL_DISABLED"):
        sys.exit("wasi_pyconfig: componentize-py's CPython is not the 32-bit, GIL build expected")
    # The build machine's pyconfig.h, for the list of macros: Debian's is one level up, in a
    # directory per architecture; upstream's is next to Python.h.
    templates = sorted(headers.parent.glob(f"*/python{version}/pyconfig.h"))
    template = templates[0] if templates else headers / "pyconfig.h"
    text = template.read_text()
    target = out / f"python{version}"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(headers, target)
    # The bundles' libc (wasi-sdk's) has a pthread.h; the older wasi-libc headers this is
    # compiled with have none. CPython's own stand-in declares the same pthread_key_t
    # (`unsigned int`), the one type Python.h needs from it.
    config = pyconfig(text, values)
    config = config.replace("#define HAVE_PTHREAD_H 1", "/* #undef HAVE_PTHREAD_H */")
    config = config.replace("/* #undef HAVE_PTHREAD_STUBS */", "#define HAVE_PTHREAD_STUBS 1")
    (target / "pyconfig.h").write_text(config)
    print(target)


if __name__ == "__main__":
    main()
