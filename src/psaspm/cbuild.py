"""Building partition code written in C (or C++) into shared objects, cached by content.

:func:`build_shared_object` compiles sources with ``$CC`` (``$CXX`` for C++)
into a position-independent shared object.  The include path is psaspm's own
PSA headers, then the caller's ``include_dirs`` (the system's generated
headers, see :func:`system_headers_dir`), then the caller's ``cflags``.

Builds are cached under ``$PSASPM_CACHE`` (default ``~/.cache/psaspm``) in
``c/<primary>/<full>.so``:

- the *primary* key hashes what is known before compiling: the sources'
  bytes and names, every flag and include directory, the working directory
  (relative ``-I`` flags and paths resolve against it), the compiler's
  identity (its resolved path and ``--version``/``-dumpmachine`` output), and
  this module's build recipe;
- the *full* key adds the bytes of every header the compiler read, which the
  compiler itself reports (``-MD -MF``).  ``<full>.deps.json`` lists those
  headers with their hashes; a lookup re-hashes them, so an edited header,
  anywhere on the include path, means a rebuild.

Writes are atomic: each build happens in a private temporary folder and its
results are renamed into place (the ``.deps.json`` last, as the commit
record), so two processes building the same code at once both get a valid
object and the cache is never left half-written.

:func:`check_shared_object` accepts a prebuilt ``.so`` after checking it is
an ELF shared object for this machine.  Every problem is a ConfigError that
names the partition (``label``) and the file; a compile error carries the
compiler's output verbatim.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from psaspm.errors import ConfigError
from psaspm.manifest.headers import render_headers
from psaspm.manifest.model import SystemManifest

INCLUDE_DIR = Path(__file__).resolve().parent / "include"
"""psaspm's own PSA headers: ``psa/client.h``, ``psa/service.h``, ``psa/error.h``,
``psa/lifecycle.h`` and ``psaspm/hal.h``."""

C_SUFFIXES = (".c",)
CXX_SUFFIXES = (".cc", ".cpp", ".cxx", ".C")
SO_SUFFIX = ".so"

# Flags psaspm always gives: position-independent code, debug information
# (so gdb can break in partition functions), and every symbol visible (the
# SPM finds entry points and service functions by name).
BASE_CFLAGS = ("-fPIC", "-g", "-fvisibility=default")
LINK_FLAGS = ("-shared",)
RECIPE = "psaspm-cbuild-1"  # change when the way objects are built changes

CLIENT_SOURCE = Path(__file__).resolve().parent / "client" / "psaspm_client.c"
"""The C client library of ``psaspm serve`` (``psa/client.h`` over the mailbox protocol)."""
CLIENT_NAME = "psaspm_client"  # libpsaspm_client.so, psaspm_client.o
CLIENT_CFLAGS = ("-O2", "-pthread")

ELF_MAGIC = b"\x7fELF"
ET_DYN = 3


@dataclass
class BuildStats:
    """How often this process compiled (a cache miss) or reused a cached object."""

    compiles: int = 0
    cache_hits: int = 0


STATS = BuildStats()


def cache_root() -> Path:
    """``$PSASPM_CACHE``, or ``~/.cache/psaspm``."""
    configured = os.environ.get("PSASPM_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "psaspm"


def include_flags() -> list[str]:
    """The ``-I`` flags for psaspm's own PSA headers (what ``psaspm cflags`` prints)."""
    return [f"-I{INCLUDE_DIR}"]


def system_headers_dir(system: SystemManifest, config: Mapping[str, object] | None = None) -> Path:
    """A folder holding this configuration's generated headers (``psaspm headers``).

    The folder is ``<cache>/headers/<hash of the headers>``: one per distinct
    configuration, written once (atomically) and shared by every build of it.
    """
    headers = render_headers(system, config)
    try:
        return _write_headers_dir(headers)
    except OSError as exc:
        raise ConfigError(
            f"cannot write generated headers under the build cache {cache_root()}: {exc}"
        ) from None


def _write_headers_dir(headers: Mapping[str, str]) -> Path:
    digest = hashlib.sha256()
    for name, text in headers.items():
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    final = cache_root() / "headers" / digest.hexdigest()[:32]
    if final.is_dir():
        return final
    with _publishing(final) as staging:
        for name, text in headers.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return final


@contextlib.contextmanager
def _publishing(final: Path) -> Iterator[Path]:
    """A private folder beside ``final`` to fill; renamed to ``final`` once the block
    ends without an exception (another process having got there first is no error), and
    removed in any case: the cache never shows a half-written folder."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        yield staging
        try:
            staging.rename(final)
        except OSError:
            if not final.is_dir():  # not another process winning the race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def build_code(
    files: Sequence[str | os.PathLike[str]],
    *,
    label: str,
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    cflags: Sequence[str] = (),
) -> Path:
    """The shared object for a partition's code: a prebuilt ``.so`` as is, or sources built.

    ``files`` is one ``.so``, or C/C++ sources (see :func:`build_shared_object`).
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise ConfigError(f"{label}: no code files given")
    objects = [p for p in paths if p.suffix == SO_SUFFIX]
    if objects:
        if len(paths) > 1:
            listed = ", ".join(str(p) for p in paths)
            raise ConfigError(
                f"{label}: a prebuilt {SO_SUFFIX} is used alone, not with other files ({listed})"
            )
        return check_shared_object(objects[0], label=label)
    return build_shared_object(paths, label=label, include_dirs=include_dirs, cflags=cflags)


def build_shared_object(
    sources: Sequence[str | os.PathLike[str]],
    *,
    label: str,
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    cflags: Sequence[str] = (),
) -> Path:
    """Compile ``sources`` (``.c``; ``.cc``/``.cpp``/``.cxx`` as C++) into a cached ``.so``.

    Include path: psaspm's PSA headers, then ``include_dirs`` (e.g.
    :func:`system_headers_dir`), then whatever ``cflags`` adds.  Returns the
    path of the object in the cache; it stays valid while the cache is not
    cleaned.  Raises ConfigError naming ``label`` for a missing source, an
    unknown suffix, a compiler that cannot run, or a compile or link error
    (with the compiler's output verbatim).
    """
    paths = [_source(Path(s), label) for s in sources]
    if not paths:
        raise ConfigError(f"{label}: no C sources given")
    cxx = any(p.suffix in CXX_SUFFIXES for p in paths)
    c_compiler = _compiler("CC", "cc", label)
    cxx_compiler = _compiler("CXX", "c++", label) if cxx else None
    includes = [str(INCLUDE_DIR)] + [str(Path(d).resolve()) for d in include_dirs]
    include_args = [f"-I{d}" for d in includes]
    flags = list(cflags)
    primary = _primary_key(paths, c_compiler, cxx_compiler, include_args, flags)
    folder = cache_root() / "c" / primary
    found = _lookup(folder)
    if found is not None:
        STATS.cache_hits += 1
        return found
    try:
        return _build(paths, folder, label, c_compiler, cxx_compiler, include_args, flags)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot write the build cache {cache_root()}: {exc}") from None


def check_shared_object(path: str | os.PathLike[str], *, label: str) -> Path:
    """``path`` resolved, once it is known to be an ELF shared object for this machine.

    Checks the ELF identification (class, byte order), the file type (a
    shared object, not an executable or relocatable object) and the machine
    against this Python's own executable.  Anything else is a ConfigError
    naming ``label`` and the file.
    """
    file = Path(path)
    try:
        with file.open("rb") as stream:
            header = stream.read(20)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read shared object {file}: {exc}") from None
    info = _elf_info(header)
    if info is None:
        raise ConfigError(f"{label}: {file} is not an ELF shared object (no ELF header)")
    host = _host_elf()
    if info[:2] != host[:2]:
        raise ConfigError(
            f"{label}: {file} is a {_elf_class(info)} ELF object; this machine needs "
            f"{_elf_class(host)}"
        )
    if info[3] != host[3]:
        raise ConfigError(
            f"{label}: {file} is built for ELF machine {info[3]}, not this machine's "
            f"({host[3]}, {os.uname().machine})"
        )
    if info[2] != ET_DYN:
        kind = {1: "a relocatable object (.o)", 2: "an executable"}.get(info[2], "not a library")
        raise ConfigError(
            f"{label}: {file} is {kind}, not a shared object (link it with -shared -fPIC)"
        )
    return file.resolve()


@dataclass(frozen=True)
class ClientLibrary:
    """The built C client library: one folder with the shared library and an object."""

    folder: Path
    shared: Path  # <folder>/libpsaspm_client.so: link with -L<folder> -lpsaspm_client
    static: Path  # <folder>/psaspm_client.o: link it into the program itself

    def link_flags(self, static: bool = False) -> list[str]:
        """What to link a C client with (what ``psaspm libs --client [--static]`` prints)."""
        if static:
            return [str(self.static), "-lpthread"]
        return [f"-L{self.folder}", f"-Wl,-rpath,{self.folder}", f"-l{CLIENT_NAME}", "-lpthread"]


def build_client_library() -> ClientLibrary:
    """Build (or find in the cache) the C client library of ``psaspm serve``.

    psaspm's ``client/psaspm_client.c`` is compiled once with ``$CC`` into
    ``psaspm_client.o`` (position-independent, for static linking), which is
    also linked into ``libpsaspm_client.so``.  Both live in
    ``<cache>/client/<key>/``, where the key hashes the source, psaspm's PSA
    headers, the compiler's identity, the flags and the recipe (not the
    working directory: every path involved is absolute).  The folder is
    written atomically.  Raises ConfigError naming the library for a compiler
    that cannot run, a compile error or an unwritable cache.
    """
    label = "the psaspm C client library"
    compiler = _compiler("CC", "cc", label)
    headers = sorted(p for p in INCLUDE_DIR.rglob("*.h") if p.is_file())
    material = {
        "recipe": RECIPE,
        "source": _sha256(CLIENT_SOURCE.read_bytes()),
        "headers": [[str(p.relative_to(INCLUDE_DIR)), _sha256(p.read_bytes())] for p in headers],
        "cc": compiler.identity,
        "flags": [*BASE_CFLAGS, *CLIENT_CFLAGS],
    }
    key = _sha256(json.dumps(material, sort_keys=True).encode())[:32]
    folder = cache_root() / "client" / key
    library = ClientLibrary(folder, folder / f"lib{CLIENT_NAME}.so", folder / f"{CLIENT_NAME}.o")
    if library.shared.is_file() and library.static.is_file():
        STATS.cache_hits += 1
        return library
    try:
        with _publishing(folder) as staging:
            obj = staging / library.static.name
            flags = [*BASE_CFLAGS, f"-I{INCLUDE_DIR}", *CLIENT_CFLAGS]
            argv = [*compiler.argv, *flags, "-c", str(CLIENT_SOURCE), "-o", str(obj)]
            _run(argv, label, f"compiling {CLIENT_SOURCE}")
            shared = staging / library.shared.name
            argv = [*compiler.argv, *LINK_FLAGS, *flags, "-o", str(shared), str(obj)]
            _run(argv, label, f"linking {shared.name}")
            STATS.compiles += 1
    except OSError as exc:
        raise ConfigError(f"{label}: cannot write the build cache {cache_root()}: {exc}") from None
    return library


# ----------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Compiler:
    """A compiler command (``$CC`` may hold arguments, e.g. ``ccache gcc``) and its identity."""

    argv: tuple[str, ...]
    identity: str


_IDENTITIES: dict[tuple[str, ...], tuple[tuple[int, int], str]] = {}


def find_c_compiler(label: str) -> _Compiler:
    """The C compiler builds use: ``$CC`` (default ``cc``), resolved on ``$PATH``; a
    ConfigError naming ``label`` when there is none."""
    return _compiler("CC", "cc", label)


def _compiler(variable: str, default: str, label: str) -> _Compiler:
    text = os.environ.get(variable, "").strip() or default
    argv = shlex.split(text)
    resolved = shutil.which(argv[0])
    if resolved is None:
        raise ConfigError(
            f"{label}: the C compiler {argv[0]!r} (${variable}) is not found; "
            f"install one or set ${variable}"
        )
    argv[0] = resolved
    key = tuple(argv)
    stat = os.stat(resolved)
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _IDENTITIES.get(key)
    if cached is not None and cached[0] == stamp:
        return _Compiler(key, cached[1])
    parts = [" ".join(key)]
    for probe in ("--version", "-dumpmachine"):
        try:
            done = subprocess.run(
                [*key, probe], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"{label}: cannot run the C compiler {text!r}: {exc}") from None
        parts.append(done.stdout + done.stderr)
    identity = "\n".join(parts)
    _IDENTITIES[key] = (stamp, identity)
    return _Compiler(key, identity)


def _source(path: Path, label: str) -> Path:
    if path.suffix not in C_SUFFIXES + CXX_SUFFIXES:
        raise ConfigError(
            f"{label}: {path} is not a C or C++ source (.c, .cc, .cpp, .cxx) or a {SO_SUFFIX}"
        )
    if not path.is_file():
        raise ConfigError(f"{label}: C source {path} not found")
    return path.resolve()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _primary_key(
    sources: Sequence[Path],
    c_compiler: _Compiler,
    cxx_compiler: _Compiler | None,
    include_args: Sequence[str],
    flags: Sequence[str],
) -> str:
    material = {
        "recipe": RECIPE,
        "cwd": os.getcwd(),  # relative -I flags and paths in cflags resolve against it
        "sources": [[str(p), _sha256(p.read_bytes())] for p in sources],
        "cc": c_compiler.identity,
        "cxx": cxx_compiler.identity if cxx_compiler is not None else None,
        "includes": list(include_args),
        "flags": list(flags),
        "base": list(BASE_CFLAGS),
    }
    return _sha256(json.dumps(material, sort_keys=True).encode())[:32]


def _lookup(folder: Path) -> Path | None:
    """A cached object in ``folder`` whose recorded headers still have the same bytes."""
    try:
        records = sorted(folder.glob("*.deps.json"))
    except OSError:
        return None
    for record in records:
        try:
            deps = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(deps, dict) or not _unchanged(deps):
            continue
        so = record.with_name(record.name.removesuffix(".deps.json") + SO_SUFFIX)
        if so.is_file():
            return so
    return None


def _unchanged(deps: dict[str, str]) -> bool:
    for name, digest in deps.items():
        try:
            if _sha256(Path(name).read_bytes()) != digest:
                return False
        except OSError:
            return False
    return True


def _build(
    sources: Sequence[Path],
    folder: Path,
    label: str,
    c_compiler: _Compiler,
    cxx_compiler: _Compiler | None,
    include_args: Sequence[str],
    flags: Sequence[str],
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
    try:
        objects: list[Path] = []
        headers: set[str] = set()
        for index, source in enumerate(sources):
            compiler = cxx_compiler if source.suffix in CXX_SUFFIXES else c_compiler
            assert compiler is not None
            obj = work / f"{index}-{source.stem}.o"
            depfile = work / f"{index}.d"
            argv = [
                *compiler.argv,
                *BASE_CFLAGS,
                *include_args,
                *flags,
                "-c",
                str(source),
                "-o",
                str(obj),
                "-MD",
                "-MF",
                str(depfile),
            ]
            _run(argv, label, f"compiling {source}")
            headers.update(_dependencies(depfile, work))
            objects.append(obj)
        linker = cxx_compiler if cxx_compiler is not None else c_compiler
        library = work / "lib.so"
        argv = [*linker.argv, *LINK_FLAGS, *BASE_CFLAGS, "-o", str(library), *map(str, objects)]
        _run([*argv, *flags], label, "linking " + ", ".join(s.name for s in sources))
        STATS.compiles += 1
        deps = {}
        for name in sorted(headers):
            try:
                deps[name] = _sha256(Path(name).read_bytes())
            except OSError:
                continue  # a header gone already (generated and removed): not cacheable by it
        full = _sha256(json.dumps(deps, sort_keys=True).encode())[:32]
        so = folder / f"{full}{SO_SUFFIX}"
        record = folder / f"{full}.deps.json"
        os.replace(library, so)
        (work / "deps.json").write_text(json.dumps(deps, indent=1), encoding="utf-8")
        os.replace(work / "deps.json", record)  # the commit record, written last
        return so
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(argv: Sequence[str], label: str, what: str) -> None:
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        raise ConfigError(f"{label}: {what}: cannot run {argv[0]}: {exc}") from None
    if done.returncode != 0:
        output = (done.stderr + done.stdout).rstrip("\n")
        raise ConfigError(
            f"{label}: {what} failed ({Path(argv[0]).name} exit status {done.returncode}):\n"
            f"{output}"
        )


def _dependencies(depfile: Path, work: Path) -> list[str]:
    """The prerequisites of a make-style dependency file (``-MD -MF``), as absolute paths."""
    try:
        text = depfile.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    names: list[str] = []
    for rule in text.replace("\\\n", " ").splitlines():
        _target, sep, prerequisites = rule.partition(": ")
        if not sep:
            continue
        names += _make_words(prerequisites)
    return [str(Path(n).resolve()) for n in names if not Path(n).resolve().is_relative_to(work)]


def _make_words(text: str) -> list[str]:
    """Split make's prerequisite list: blanks separate, ``\\ `` is a space in a name."""
    words: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in " #":
            current.append(text[i + 1])
            i += 2
            continue
        if char == "$" and i + 1 < len(text) and text[i + 1] == "$":
            current.append("$")
            i += 2
            continue
        if char in " \t":
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
        i += 1
    if current:
        words.append("".join(current))
    return words


_ElfInfo = tuple[int, int, int, int]  # class, data (byte order), type, machine


def _elf_info(header: bytes) -> _ElfInfo | None:
    if len(header) < 20 or header[:4] != ELF_MAGIC or header[5] not in (1, 2):
        return None
    order = "<" if header[5] == 1 else ">"
    file_type, machine = struct.unpack(order + "HH", header[16:20])
    return header[4], header[5], file_type, machine


_HOST: list[_ElfInfo] = []


def _host_elf() -> _ElfInfo:
    """The ELF identification of the running Python, i.e. of this machine's objects."""
    if not _HOST:
        info = None
        for candidate in ("/proc/self/exe", sys.executable):
            try:
                with open(candidate, "rb") as stream:
                    info = _elf_info(stream.read(20))
            except OSError:
                continue
            if info is not None:
                break
        if info is None:
            raise ConfigError("cannot tell this machine's ELF format (is this Linux?)")
        _HOST.append(info)
    return _HOST[0]


def _elf_class(info: _ElfInfo) -> str:
    width = {1: "32-bit", 2: "64-bit"}.get(info[0], "unknown-width")
    order = {1: "little-endian", 2: "big-endian"}[info[1]]
    return f"{width} {order}"
