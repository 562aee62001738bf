"""Packs a WASI wheel from a project's unpacked sdist and its compiled extension.

    python3 scripts/wasi_wheel.py EXTENSION SDIST_DIR OUT_DIR PYTHON_VERSION [MODULE]

EXTENSION is the shared library built for WASI (by cargo in scripts/build-wasi-wheels.sh, by
clang in scripts/build-wasi-c-wheels.sh); SDIST_DIR holds PKG-INFO and the Python sources.
MODULE is the extension module's dotted path (`regex._regex`); without it, it is read from a
maturin project's pyproject.toml (`[tool.maturin] module-name`).
Prints the wheel's path. maturin cannot do this itself: it has no WASI target that produces a
shared library componentize-py can link, so the wheel is assembled by hand, as PEP 427 describes.
"""

import base64
import hashlib
import os
import re
import sys
import zipfile
from pathlib import Path

# The platform tag pip matches with `--platform wasi_0_0_0_wasm32` (what wasmfn build passes).
PLATFORM = "wasi_0_0_0_wasm32"
# Fixed timestamps, so the same inputs give the same wheel bytes.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def maturin_setting(pyproject: str, key: str) -> str | None:
    """A string value of `[tool.maturin]` (tomllib is 3.11+; the hosts may be older)."""
    section = re.search(r"^\[tool\.maturin\]\s*$(.*?)(?=^\[|\Z)", pyproject, re.M | re.S)
    if section is None:
        return None
    value = re.search(rf"^{re.escape(key)}\s*=\s*[\"']([^\"']+)[\"']", section.group(1), re.M)
    return value.group(1) if value else None


def metadata_field(pkg_info: str, field: str) -> str:
    value = re.search(rf"^{field}: (.+)$", pkg_info, re.M)
    if value is None:
        sys.exit(f"wasi_wheel: PKG-INFO has no {field}")
    return value.group(1).strip()


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def main() -> None:
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    extension, sdist, out_dir, python_version = sys.argv[1:5]
    sdist_dir = Path(sdist)
    pkg_info = (sdist_dir / "PKG-INFO").read_text(encoding="utf-8")
    pyproject_path = sdist_dir / "pyproject.toml"
    pyproject = pyproject_path.read_text(encoding="utf-8") if pyproject_path.exists() else ""
    # Wheel file names use the normalised name with underscores (PEP 491).
    name = re.sub(r"[-_.]+", "_", metadata_field(pkg_info, "Name")).lower()
    version = metadata_field(pkg_info, "Version")
    # `module-name = "pydantic_core._pydantic_core"`: the extension module's dotted path.
    module = sys.argv[5] if len(sys.argv) == 6 else maturin_setting(pyproject, "module-name")
    if module is None:
        sys.exit("wasi_wheel: pyproject.toml has no [tool.maturin] module-name")
    python_source = sdist_dir / (maturin_setting(pyproject, "python-source") or ".")

    # Built for one CPython version (not the stable ABI): the tag and the file name say so,
    # and componentize-py only loads extensions named `*.cpython-314-wasm32-wasi.so`.
    abi = "cp" + python_version.replace(".", "")
    tag = f"{abi}-{abi}-{PLATFORM}"
    extension_path = module.replace(".", "/") + f".cpython-{abi[2:]}-wasm32-wasi.so"
    dist_info = f"{name}-{version}.dist-info"

    files: dict[str, bytes] = {}
    package_root = python_source / module.split(".")[0]
    for path in sorted(package_root.rglob("*")):
        # The sources, stubs and py.typed; never compiled files left in the sdist, nor the
        # package's own test suite (regex ships one inside the package).
        relative = path.relative_to(package_root).parts
        if relative[0] == "tests":
            continue
        if path.is_file() and path.suffix in (".py", ".pyi", ".typed"):
            files[path.relative_to(python_source).as_posix()] = path.read_bytes()
    files[extension_path] = Path(extension).read_bytes()
    files[f"{dist_info}/METADATA"] = pkg_info.encode()
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\n"
        "Generator: wasmfn scripts/wasi_wheel.py\n"
        "Root-Is-Purelib: false\n"
        f"Tag: {tag}\n"
    ).encode()
    # The licence travels with the binary (pydantic-core is MIT, regex Apache-2.0).
    for licence in sorted(sdist_dir.glob("LICEN[CS]E*")):
        files[f"{dist_info}/licenses/{licence.name}"] = licence.read_bytes()
    record = [record_line(path, data) for path, data in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{name}-{version}-{tag}.whl"
    # Written under another name and renamed: an interrupted run never leaves a wheel that the
    # next run would take as already built.
    partial = wheel.with_name(wheel.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        # dist-info last, as the wheel spec recommends.
        for path in sorted(files, key=lambda p: (p.startswith(dist_info), p)):
            info = zipfile.ZipInfo(path, ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[path])
    os.replace(partial, wheel)
    print(wheel)


if __name__ == "__main__":
    main()
