"""Find (and, for --bump-runtime, patch) the TensorFlow Lite runtime version an Android app depends on.

Three declaration styles are understood:
- Kotlin DSL ``app/build.gradle.kts``: ``implementation("org.tensorflow:tensorflow-lite:2.12.0")``
- Groovy ``build.gradle``: ``implementation 'org.tensorflow:tensorflow-lite:2.12.0'``, also ``"...:$tfliteVersion"``
  with ``def tfliteVersion = "2.12.0"`` (or ``ext.tfliteVersion``/``val``) in the same file
- a version catalog ``gradle/libs.versions.toml``: a library for ``org.tensorflow:tensorflow-lite`` with
  ``version = "..."`` or ``version.ref = "key"`` pointing into ``[versions]``.

The runtime is the version of ``tensorflow-lite`` itself. Its companions released in lock-step (``-gpu``, ``-gpu-api``,
``-api``, ``-select-tf-ops``) are bumped with it; ``-support``/``-metadata``/``-task-*`` have their own version line
and are never touched.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import InputError
from toolkit.tflite.op_versions import parse_version

CORE = "tensorflow-lite"
LOCKSTEP = {"tensorflow-lite", "tensorflow-lite-gpu", "tensorflow-lite-gpu-api", "tensorflow-lite-api",
            "tensorflow-lite-select-tf-ops"}
SKIP_DIRS = {"build", ".gradle", ".git", ".idea", ".ftk-deploy", "node_modules"}

_DEP_RE = re.compile(r"""(?P<quote>["'])org\.tensorflow:(?P<artifact>tensorflow-lite[\w-]*):(?P<version>[^"'@:\s]+)(?P=quote)""")
_VERSION_TEXT_RE = re.compile(r"^\d+(\.\d+)*([-.]\w+)?$")


@dataclass
class VersionSite:
    """One place a lock-step TFLite version is written: ``text[start:end]`` of ``path`` holds it."""

    path: Path
    line: int  # 1-based
    start: int  # character offsets in the file text
    end: int
    version: str
    artifact: str


@dataclass
class RuntimeDependency:
    version: str  # the tensorflow-lite core version the app builds against
    declared_in: Path  # the file that states the core version
    style: str  # "kotlin-dsl" | "groovy" | "version-catalog"
    sites: list[VersionSite] = field(default_factory=list)  # every lock-step version literal (patched together)

    def describe(self) -> str:
        return f"org.tensorflow:{CORE}:{self.version} ({self.style}, {self.declared_in})"


def gradle_files(app_dir: Path) -> list[Path]:
    found = []
    for path in sorted(app_dir.rglob("*")):
        if any(part in SKIP_DIRS for part in path.relative_to(app_dir).parts[:-1]):
            continue
        if path.is_file() and (path.name in ("build.gradle", "build.gradle.kts") or path.name.endswith(".versions.toml")):
            found.append(path)
    return found


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _is_commented(text: str, offset: int) -> bool:
    """True when ``offset`` lies after ``//`` (or ``#`` in TOML) on its line or inside a ``/* */`` block."""
    line_start = text.rfind("\n", 0, offset) + 1
    prefix = text[line_start:offset]
    if "//" in prefix.replace("://", "") or prefix.lstrip().startswith("#"):
        return True
    return text.rfind("/*", 0, offset) > text.rfind("*/", 0, offset)


def _resolve_variable(text: str, name: str) -> tuple[int, int, str] | None:
    """Where ``def|val|var|ext.NAME = "x"`` (or ``NAME = "x"`` inside ``ext {}``) sets the version string."""
    pattern = re.compile(rf"""(?m)^\s*(?:(?:def|val|var)\s+|ext\.|extra\[\s*"){re.escape(name)}"?\]?\s*(?::\s*String\s*)?=\s*(["'])(?P<v>[^"']+)\1""")
    hits = [m for m in pattern.finditer(text) if not _is_commented(text, m.start())]
    if not hits:
        pattern = re.compile(rf"""(?m)^\s*{re.escape(name)}\s*=\s*(["'])(?P<v>[^"']+)\1""")
        hits = [m for m in pattern.finditer(text) if not _is_commented(text, m.start())]
    if len(hits) != 1:
        return None
    return hits[0].start("v"), hits[0].end("v"), hits[0].group("v")


def _scan_build_file(path: Path) -> list[VersionSite]:
    text = path.read_text(encoding="utf-8")
    sites = []
    for match in _DEP_RE.finditer(text):
        if _is_commented(text, match.start()):
            continue
        artifact, version = match.group("artifact"), match.group("version")
        if artifact not in LOCKSTEP:
            continue
        start, end = match.start("version"), match.end("version")
        variable = re.fullmatch(r"\$\{?(\w+)\}?", version)
        if variable:
            resolved = _resolve_variable(text, variable.group(1))
            if resolved is None:
                raise InputError(f"{path}:{_line_of(text, start)}: {artifact} uses ${variable.group(1)} but the "
                                 "variable is not set once in that file",
                                 hint="write the version literally, or pass --bump-runtime only after fixing it")
            start, end, version = resolved
        sites.append(VersionSite(path, _line_of(text, start), start, end, version, artifact))
    return sites


def _scan_catalog(path: Path) -> list[VersionSite]:
    text = path.read_text(encoding="utf-8")
    try:
        catalog = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}") from None
    libraries = catalog.get("libraries") or {}
    sites = []
    for alias, entry in libraries.items():
        if isinstance(entry, str):  # "group:name:version"
            group, _, rest = entry.partition(":")
            name, _, version = rest.partition(":")
            ref = None
        elif isinstance(entry, dict):
            module = entry.get("module") or f"{entry.get('group', '')}:{entry.get('name', '')}"
            group, _, name = module.partition(":")
            version_field = entry.get("version")
            ref = entry.get("version.ref") or (version_field.get("ref") if isinstance(version_field, dict) else None)
            version = version_field if isinstance(version_field, str) else None
        else:
            continue
        if group != "org.tensorflow" or name not in LOCKSTEP:
            continue
        if ref:
            key_re = re.compile(rf"""(?m)^\s*"?{re.escape(ref)}"?\s*=\s*(["'])(?P<v>[^"']+)\1""")
            versions_at = text.find("[versions]")
            match = next((m for m in key_re.finditer(text) if m.start() > versions_at >= 0
                          and not _is_commented(text, m.start())), None)
        else:
            if not version:
                continue
            line_re = re.compile(rf"""(?m)^\s*"?{re.escape(alias)}"?\s*=.*?(?P<v>{re.escape(version)})""")
            match = line_re.search(text)
        if match is None:
            raise InputError(f"{path}: cannot locate the version of library '{alias}' ({group}:{name})",
                             hint="declare it as version.ref into [versions] or an inline version = \"x.y.z\"")
        sites.append(VersionSite(path, _line_of(text, match.start("v")), match.start("v"), match.end("v"),
                                 match.group("v"), name))
    return sites


def find_runtime(app_dir: str | Path) -> RuntimeDependency:
    """The TFLite runtime version the app builds against, with every lock-step version site."""
    app_dir = Path(app_dir)
    files = gradle_files(app_dir)
    sites: list[VersionSite] = []
    for path in files:
        sites.extend(_scan_catalog(path) if path.suffix == ".toml" else _scan_build_file(path))
    # A catalog entry reached through version.ref may be listed by several libraries: keep each span once.
    core = [s for s in sites if s.artifact == CORE]
    unique: dict[tuple[Path, int], VersionSite] = {}
    for site in sites:
        unique.setdefault((site.path, site.start), site)
    sites = sorted(unique.values(), key=lambda s: (str(s.path), s.start))
    if not core:
        raise InputError(f"no org.tensorflow:{CORE} dependency found in {app_dir} "
                         f"(looked in {len(files)} Gradle file(s): build.gradle, build.gradle.kts, *.versions.toml)",
                         hint="ftk deploy targets apps on the TensorFlow Lite runtime; LiteRT "
                              "(com.google.ai.edge.litert) apps are not supported yet")
    versions = sorted({s.version for s in core})
    if len(versions) > 1:
        where = "; ".join(f"{s.path.relative_to(app_dir)}:{s.line} = {s.version}" for s in core)
        raise InputError(f"the app declares several {CORE} versions ({where})",
                         hint="make them agree, or pass --bump-runtime VERSION to set them all")
    version = versions[0]
    if not _VERSION_TEXT_RE.match(version):
        raise InputError(f"cannot read the {CORE} version {version!r} in {core[0].path}:{core[0].line}",
                         hint="write a literal version such as 2.12.0")
    declared_in = core[0].path
    style = ("version-catalog" if declared_in.suffix == ".toml"
             else "kotlin-dsl" if declared_in.name.endswith(".kts") else "groovy")
    # Companions pinned to the same version move with the core; others (already different) are left alone.
    lockstep = [s for s in sites if s.version == version]
    return RuntimeDependency(version=version, declared_in=declared_in, style=style, sites=lockstep)


def bumped_texts(runtime: RuntimeDependency, new_version: str) -> dict[Path, str]:
    """New contents of each Gradle file with every lock-step site set to ``new_version``."""
    try:
        parse_version(new_version)
    except ValueError:
        raise InputError(f"--bump-runtime {new_version!r} is not a version", hint="e.g. --bump-runtime 2.16.1") from None
    if not _VERSION_TEXT_RE.match(new_version):
        raise InputError(f"--bump-runtime {new_version!r} is not a version", hint="e.g. --bump-runtime 2.16.1")
    out: dict[Path, str] = {}
    by_file: dict[Path, list[VersionSite]] = {}
    for site in runtime.sites:
        by_file.setdefault(site.path, []).append(site)
    for path, file_sites in by_file.items():
        text = path.read_text(encoding="utf-8")
        for site in sorted(file_sites, key=lambda s: s.start, reverse=True):
            text = text[:site.start] + new_version + text[site.end:]
        out[path] = text
    return out
