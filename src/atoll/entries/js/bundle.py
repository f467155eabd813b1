"""Turn a worker's JavaScript into one script V8 can run: esbuild at load time, cached.

Runs once per worker load (``atoll dev`` start or reload, each deploy); a
cache hit costs reading and hashing the worker's input files.

* An **ES module** worker (``export default { fetch }``) is bundled by
  esbuild (``--bundle --format=esm``): relative imports and npm packages from
  the worker's ``node_modules`` are inlined. Non-JS imports (``.wasm``,
  ``.txt``, ``.html``, ``.bin`` by default; :data:`DEFAULT_RULES`) stay
  imports (esbuild's ``copy`` loader), which atoll then replaces by a lookup
  in a table of modules it loads itself (a ``.wasm`` becomes a
  ``WebAssembly.Module`` compiled once per isolate). The bundle's final
  ``export { … }`` becomes a ``return``, and the whole is the body of an
  ``async function``: top-level ``await`` (the seed's ``const instance =
  await wasmModule()``) works, which an esbuild IIFE cannot express.
* A **service-worker** script (no exports) runs as a classic script: its
  bindings are globals.

esbuild is the npm package pinned in ``bundler/package.json`` (its native
binary; node is not needed at run time), found at ``$ATOLL_ESBUILD``, then in
``bundler/node_modules``, then on ``PATH``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atoll.errors import WorkerLoadError
from atoll.manifest import Manifest
from atoll.runtime.private import private_dir

__all__ = [
    "DEFAULT_RULES",
    "Bundle",
    "ModuleRule",
    "bundle_worker",
    "dependency_files",
    "esbuild_path",
    "rules_for",
]

BUNDLER_DIR = Path(__file__).parent / "bundler"

#: The name the worker's own code sees for the import lookup (a parameter of its wrapper).
IMPORT_FN = "__atoll_import"


@dataclass(frozen=True, slots=True)
class ModuleRule:
    """One module rule, as Wrangler's ``[[rules]]``: files matching ``globs`` load as ``type``.

    ``type`` is ``CompiledWasm`` (a ``WebAssembly.Module``), ``Text`` (a string)
    or ``Data`` (an ``ArrayBuffer``).
    """

    type: str
    globs: tuple[str, ...]


#: Wrangler's default module rules.
DEFAULT_RULES: tuple[ModuleRule, ...] = (
    ModuleRule("CompiledWasm", ("**/*.wasm", "**/*.wasm?module")),
    ModuleRule("Text", ("**/*.txt", "**/*.html", "**/*.sql")),
    ModuleRule("Data", ("**/*.bin",)),
)

_KINDS = ("CompiledWasm", "Text", "Data")

#: This module's own source: a cached bundle made by another version of it is not reused.
_BUNDLER_KEY = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


@dataclass
class Bundle:
    """What the loader evaluates: the code and the non-JS modules it imports."""

    code: str
    #: True for ``export default`` workers (code is an async function body), False for
    #: service-worker scripts (code is a classic script).
    is_module: bool
    #: Path relative to the worker folder (as the code asks for it) → (rule type, file).
    modules: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Every input file (relative) → sha256, to tell whether a cached bundle is stale.
    inputs: dict[str, str] = field(default_factory=dict)
    #: esbuild's source map of ``code`` (``sources`` relative to the worker folder,
    #: ``mappings``), for JS stacks in the original files.
    sourcemap: dict[str, Any] = field(default_factory=dict)


def rules_for(manifest: Manifest) -> tuple[ModuleRule, ...]:
    """The module rules of a manifest: its ``[[rules]]``, then the defaults (wrangler's order).

    A rule without ``fallthrough`` hides the later rules of its type (defaults included).
    ``ESModule``/``CommonJS`` rules need nothing here (esbuild bundles JS itself);
    ``PythonModule``/``PythonRequirement`` do not apply to JS.
    """
    out: list[ModuleRule] = []
    closed: set[str] = set()
    declared = getattr(manifest, "rules", ())
    for rule in declared:
        if rule.type in _KINDS and rule.type not in closed:
            out.append(ModuleRule(rule.type, tuple(rule.globs)))
        if not rule.fallthrough:
            closed.add(rule.type)
    out += [rule for rule in DEFAULT_RULES if rule.type not in closed]
    return tuple(out)


def esbuild_path() -> str | None:
    """The esbuild binary to run, or None when it is not installed."""
    env = os.environ.get("ATOLL_ESBUILD")
    if env:
        return env
    local = BUNDLER_DIR / "node_modules" / "@esbuild" / "linux-x64" / "bin" / "esbuild"
    if local.is_file():
        return str(local)
    bin_link = BUNDLER_DIR / "node_modules" / ".bin" / "esbuild"
    if bin_link.is_file():
        return str(bin_link)
    return shutil.which("esbuild")


def bundle_worker(
    manifest: Manifest,
    rules: tuple[ModuleRule, ...] = DEFAULT_RULES,
    cache_dir: Path | None = None,
) -> Bundle:
    """Bundle ``manifest.main`` (cached in ``cache_dir``/js when given).

    ``rules`` are the module rules (Wrangler ``[[rules]]`` first, then
    :data:`DEFAULT_RULES`; the first rule whose glob matches wins). Raises
    :class:`WorkerLoadError` when esbuild is missing or fails (its message
    names file and line).
    """
    for rule in rules:
        if rule.type not in _KINDS:
            raise WorkerLoadError(
                f"module rule type {rule.type!r} is not supported",
                hint=f"use one of {', '.join(_KINDS)} (ESModule/CommonJS files are bundled as JS)",
            )
    key = hashlib.sha256(
        json.dumps(
            [str(manifest.resolve(manifest.main)), [(r.type, r.globs) for r in rules]]
        ).encode()
    ).hexdigest()[:24]
    cached = _read_cache(cache_dir, key, manifest.root)
    if cached is not None:
        return cached
    result = _run_esbuild(manifest, rules)
    _write_cache(cache_dir, key, result)
    return result


def _read_cache(cache_dir: Path | None, key: str, root: Path) -> Bundle | None:
    if cache_dir is None:
        return None
    try:
        data = json.loads((cache_dir / "js" / f"{key}.json").read_text(encoding="utf-8"))
        for relative, digest in data["inputs"].items():
            if _sha256(root / relative) != digest:
                return None
        return Bundle(
            code=data["code"],
            is_module=data["is_module"],
            modules={k: (v[0], v[1]) for k, v in data["modules"].items()},
            inputs=data["inputs"],
            sourcemap=data.get("sourcemap", {}),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(cache_dir: Path | None, key: str, result: Bundle) -> None:
    if cache_dir is None:
        return
    folder = cache_dir / "js"
    try:
        private_dir(folder)  # the node's own, like the compiled-code cache (files: mkstemp, 0600)
        data = {
            "code": result.code,
            "is_module": result.is_module,
            "modules": result.modules,
            "inputs": result.inputs,
            "sourcemap": result.sourcemap,
        }
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:  # pragma: no cover - a read-only cache only costs a rebundle
        pass


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _extensions(rules: tuple[ModuleRule, ...]) -> set[str]:
    out = set()
    for rule in rules:
        for glob in rule.globs:
            name = glob.rsplit("/", 1)[-1].split("?", 1)[0]
            if "." in name:
                out.add("." + name.rsplit(".", 1)[-1])
    return out


def _run_esbuild(manifest: Manifest, rules: tuple[ModuleRule, ...]) -> Bundle:
    esbuild = esbuild_path()
    if esbuild is None:
        raise WorkerLoadError(
            f"{manifest.main}: bundling a JavaScript worker needs esbuild, which is not installed",
            hint="run scripts/setup.sh (it runs `npm ci` in src/atoll/entries/js/bundler), "
            "or set ATOLL_ESBUILD to an esbuild binary",
        )
    root = manifest.root
    with tempfile.TemporaryDirectory(prefix="atoll-esbuild-") as tmp:
        out = Path(tmp) / "out"
        meta_file = Path(tmp) / "meta.json"
        args = [
            esbuild,
            manifest.main,
            "--bundle",
            "--format=esm",
            "--platform=neutral",
            "--target=es2022",
            "--main-fields=workerd,worker,browser,module,main",
            "--conditions=workerd,worker,browser",
            f"--outdir={out}",
            f"--outbase={root}",
            "--asset-names=[dir]/[name]",
            f"--metafile={meta_file}",
            "--sourcemap=external",
            "--log-level=error",
            # The bundle runs as a function body, where `import.meta` is a syntax error:
            # esbuild makes it an empty object, and `import.meta.url` a file: URL of the
            # entry (Emscripten's glue builds a URL from it).
            "--supported:import-meta=false",
            f"--define:import.meta.url={json.dumps('file:///' + manifest.main)}",
            *(f"--loader:{ext}=copy" for ext in sorted(_extensions(rules))),
        ]
        try:
            proc = subprocess.run(
                args, cwd=root, capture_output=True, text=True, timeout=120, check=False
            )
        except OSError as exc:
            raise WorkerLoadError(
                f"{manifest.main}: cannot run esbuild ({esbuild}): {exc}",
                hint="reinstall it: scripts/setup.sh",
            ) from None
        if proc.returncode != 0:
            raise WorkerLoadError(
                f"{manifest.main}: bundling failed:\n{(proc.stderr or proc.stdout).strip()}",
                hint="fix the error above (esbuild names the file and line)",
            )
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        entry_out = next(
            (
                name
                for name, info in meta["outputs"].items()
                if info.get("entryPoint") and name.endswith((".js", ".mjs"))
            ),
            None,
        )
        if entry_out is None:  # pragma: no cover - esbuild always names its entry output
            raise WorkerLoadError(f"{manifest.main}: esbuild produced no bundle")
        info = meta["outputs"][entry_out]
        out_file = (
            (Path(tmp) / entry_out).resolve()
            if not Path(entry_out).is_absolute()
            else Path(entry_out)
        )
        if not out_file.is_file():
            out_file = (root / entry_out).resolve()
        code = out_file.read_text(encoding="utf-8")
        inputs = {
            name.split("?", 1)[0]: _sha256(root / name.split("?", 1)[0]) for name in meta["inputs"]
        }
        out_dir_rel = posixpath.dirname(out_file.relative_to(out.resolve()).as_posix())
        sourcemap = _read_sourcemap(out_file, out, root)
        exports: list[str] = info.get("exports", [])
        code, modules = _rewrite_imports(code, out_dir_rel, rules, manifest)
        if exports:
            code = _rewrite_exports(code, manifest)
            return Bundle(code, True, modules, inputs, sourcemap)
        if modules:
            raise WorkerLoadError(
                f"{manifest.main}: a service-worker script (no `export default`) cannot import "
                "modules",
                hint="bind them with [wasm_modules] (they become globals), or write "
                "`export default { async fetch(request, env, ctx) { … } }`",
            )
        return Bundle(code, False, modules, inputs, sourcemap)


def _read_sourcemap(out_file: Path, out: Path, root: Path) -> dict[str, Any]:
    """esbuild's map of ``out_file``, its sources made relative to the worker folder."""
    try:
        data = json.loads(out_file.with_name(out_file.name + ".map").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    sources = []
    for source in data.get("sources", []):
        path = (out_file.parent / source).resolve()
        try:
            sources.append(path.relative_to(root).as_posix())
        except ValueError:
            sources.append(str(source))
    return {"sources": sources, "mappings": data.get("mappings", "")}


# esbuild hoists the imports it leaves (copy-loaded files) to the top of its output.
_IMPORT = re.compile(
    r'^import\s+(?:(?P<default>[\w$]+)|\*\s+as\s+(?P<ns>[\w$]+)|(?P<named>\{[^}]*\}))\s+from\s+"(?P<path>[^"]+)";\s*$'
    r'|^import\s+"(?P<bare>[^"]+)";\s*$',
    re.M,
)
_EXPORT = re.compile(r"^export\s*\{(?P<names>[^}]*)\};?\s*$", re.M)


def _rule_for(relative: str, rules: tuple[ModuleRule, ...]) -> str | None:
    for rule in rules:
        for glob in rule.globs:
            pattern = glob[3:] if glob.startswith("**/") else glob
            if (
                fnmatch.fnmatchcase(relative, glob)
                or fnmatch.fnmatchcase(posixpath.basename(relative), pattern)
                or fnmatch.fnmatchcase(relative, pattern)
            ):
                return rule.type
    return None


def _rewrite_imports(
    code: str, out_dir: str, rules: tuple[ModuleRule, ...], manifest: Manifest
) -> tuple[str, dict[str, tuple[str, str]]]:
    modules: dict[str, tuple[str, str]] = {}

    def replace(match: re.Match[str]) -> str:
        path = match.group("path") or match.group("bare")
        file_part, _, query = path.partition("?")
        relative = posixpath.normpath(posixpath.join(out_dir, file_part))
        asked = relative + (f"?{query}" if query else "")
        kind = _rule_for(asked, rules) or _rule_for(relative, rules)
        if kind is None:
            raise WorkerLoadError(
                f"{manifest.main}: import of {path!r} matches no module rule",
                hint="module rules load .wasm (CompiledWasm), .txt/.html (Text), .bin (Data)",
            )
        modules[relative] = (kind, relative)
        lookup = f"{IMPORT_FN}({json.dumps(relative)})"
        if match.group("default"):
            return f"const {match.group('default')} = {lookup};"
        if match.group("ns"):
            return f"const {match.group('ns')} = Object.freeze({{ default: {lookup} }});"
        if match.group("named"):
            names = match.group("named").strip("{} \n")
            parts = []
            for item in filter(None, (p.strip() for p in names.split(","))):
                source, _, local = item.partition(" as ")
                if source.strip() != "default":
                    raise WorkerLoadError(
                        f"{manifest.main}: `import {{ {source.strip()} }} from {path!r}`: a "
                        f"{kind} module has only a default export",
                        hint=f"write `import mod from {path!r}`",
                    )
                parts.append(f"const {(local or source).strip()} = {lookup};")
            return " ".join(parts)
        return f"{lookup};"

    return _IMPORT.sub(replace, code), modules


def _rewrite_exports(code: str, manifest: Manifest) -> str:
    matches = list(_EXPORT.finditer(code))
    if not matches:
        raise WorkerLoadError(
            f"{manifest.main}: the bundle's exports could not be read",
            hint="report this with the worker's source",
        )
    last = matches[-1]
    fields = []
    for item in filter(None, (p.strip() for p in last.group("names").split(","))):
        local, _, exported = item.partition(" as ")
        fields.append(f"{json.dumps((exported or local).strip())}: {local.strip()}")
    body = code[: last.start()] + f"return {{ {', '.join(fields)} }};\n" + code[last.end() :]
    return body


def dependency_files(manifest: Manifest) -> dict[str, bytes]:
    """The files of ``node_modules`` a JS worker's bundle reads: relative path → content.

    ``atoll deploy`` packs them with the worker (the rest of ``node_modules`` stays out of
    the upload), so that the node, which bundles at load, finds them. Runs esbuild once
    (or reads the cache). Raises :class:`WorkerLoadError` when the worker does not bundle.
    """
    result = bundle_worker(manifest, rules_for(manifest))
    wanted: set[str] = set()
    for relative in result.inputs:
        parts = relative.split("/")
        if "node_modules" not in parts or ".." in parts:
            continue
        wanted.add(relative)
        # esbuild resolves through package.json files (exports, main, type) without listing
        # them as inputs: every one from the file's folder up to its package's root.
        top = len(parts) - 1 - parts[::-1].index("node_modules")
        for end in range(len(parts) - 1, top + 1, -1):
            candidate = "/".join([*parts[:end], "package.json"])
            if (manifest.root / candidate).is_file():
                wanted.add(candidate)
    return {relative: (manifest.root / relative).read_bytes() for relative in sorted(wanted)}


def main(argv: list[str] | None = None) -> int:
    """``python -m atoll.entries.js.bundle [DIR]``: bundle a JS worker, say what went in.

    The ``[build] command`` of the ``js`` templates: it checks that the worker bundles
    (syntax, imports, module rules) without starting V8.
    """
    import sys

    from atoll.errors import AtollError
    from atoll.manifest import load_manifest

    args = sys.argv[1:] if argv is None else argv
    try:
        manifest = load_manifest(args[0] if args else ".")
        result = bundle_worker(manifest)
    except AtollError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    kind = "ES module" if result.is_module else "service worker"
    print(
        f"bundled {manifest.main} ({kind}): {len(result.code)} bytes of JS, {len(result.inputs)} files"
    )
    for relative, (rule, _) in sorted(result.modules.items()):
        print(f"  {relative}: {rule}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
