"""An Android app checkout as ftk deploy sees it, read through the Kotlin parse tree (:mod:`kotlin_source`).

What it reads: every Kotlin source of the app (build output and VCS folders skipped, symlinks never followed), the
``inputSize`` / ``embeddingDim`` declarations (an integer literal each; trailing comments stay), the active model
file name (the string passed to ``FileUtil.loadMappedFile``; commented-out alternatives are comments, not calls),
the match threshold (a property whose name ends in ``threshold``, wherever it is declared) and the assets folder.
The activities are the files that declare both ``inputSize`` and ``embeddingDim``. Only literal values are edited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from toolkit.deploy.kotlin_source import Edit, KotlinFile, parse_file
from toolkit.errors import InputError

SKIP_DIRS = {"build", ".gradle", ".git", ".idea", ".ftk-deploy", "node_modules"}
SETTINGS = ("inputSize", "embeddingDim")
MODEL_LOADERS = ("loadMappedFile",)


@dataclass
class Literal:
    """One literal the deploy may rewrite: a declaration's value or a string argument."""

    file: KotlinFile
    name: str  # what it is: inputSize, embeddingDim, threshold, model file
    value: str  # the literal's text (a string's content without quotes)
    start: int  # byte range of the value in the file's content
    end: int
    line: int
    comment: str | None = None  # the trailing // comment on its line

    @property
    def where(self) -> str:
        return f"{self.file.rel}:{self.line}"

    def edit(self, new: str) -> Edit:
        return Edit(self.start, self.end, new)


@dataclass
class AndroidApp:
    root: Path
    files: dict[Path, KotlinFile]  # every Kotlin source, parsed
    assets_dir: Path
    sizes: list[Literal] = field(default_factory=list)
    dims: list[Literal] = field(default_factory=list)
    thresholds: list[Literal] = field(default_factory=list)
    model_loads: list[Literal] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what" for declarations deploy cannot edit
    warnings: list[str] = field(default_factory=list)

    @property
    def activities(self) -> list[Path]:
        """Files declaring both inputSize and embeddingDim (the registering and the matching activity)."""
        with_size = {lit.file.path for lit in self.sizes}
        return sorted(p for p in {lit.file.path for lit in self.dims} if p in with_size)

    @property
    def current_models(self) -> list[str]:
        return sorted({lit.value for lit in self.model_loads})

    @property
    def threshold(self) -> Literal | None:
        return self.thresholds[0] if len(self.thresholds) == 1 else None

    def constants_problems(self) -> list[str]:
        """Why the constants cannot be patched in place (empty: they can)."""
        problems = list(self.problems)
        if len(self.activities) < 1:
            problems.append("no Kotlin file declares both 'val inputSize = N' and 'val embeddingDim = D'")
        if len(self.thresholds) != 1:
            where = ", ".join(t.where for t in self.thresholds) or "none"
            problems.append(f"expected one match threshold declaration ('val threshold = 0.5'), found "
                            f"{len(self.thresholds)} ({where})")
        if not self.model_loads:
            problems.append("no active FileUtil.loadMappedFile(context, \"<file>.tflite\") call names the model")
        return problems


def source_files(app_dir: Path, warnings: list[str] | None = None) -> list[Path]:
    """The app's Kotlin sources: regular files only (a symlink is skipped and named, never followed)."""
    out = []
    for path in sorted(app_dir.rglob("*.kt")):
        if any(part in SKIP_DIRS for part in path.relative_to(app_dir).parts[:-1]):
            continue
        if path.is_symlink() or not path.is_file():
            if warnings is not None:
                warnings.append(f"{path.relative_to(app_dir)} is not a regular file (a symlink?): not read, not "
                                "changed")
            continue
        out.append(path)
    return out


def _literal(file: KotlinFile, node, name: str, string: bool = False) -> Literal:
    if string:  # the string_content inside the quotes
        content = next(c for c in node.named_children if c.type == "string_content")
        node = content
    return Literal(file, name, file.text(node), node.start_byte, node.end_byte, file.line(node),
                   file.trailing_comment(node.parent if not string else node))


def _read_declarations(app: AndroidApp, file: KotlinFile) -> None:
    for prop in file.nodes("property_declaration"):
        name = file.name_of(prop) or ""
        value = file.initializer(prop)
        if name in SETTINGS:
            if value is None or value.type != "number_literal" or not file.text(value).isdigit():
                app.problems.append(f"{file.where(prop)}: {name} is not an integer literal "
                                    f"({file.text(prop)[:60]!r}); ftk deploy edits only literals")
                continue
            (app.sizes if name == "inputSize" else app.dims).append(_literal(file, value, name))
        elif name.lower().endswith("threshold") and value is not None:
            if value.type in ("float_literal", "number_literal"):
                app.thresholds.append(_literal(file, value, "threshold"))
    for call in file.nodes("call_expression"):
        if file.name_of(call) not in MODEL_LOADERS:
            continue
        for arg in file.arguments(call):
            literal = arg.named_children[0] if arg.named_children else None
            if literal is None or literal.type != "string_literal":
                continue
            parts = [c.type for c in literal.named_children]
            if parts == ["string_content"] and file.text(literal).strip('"').endswith(".tflite"):
                app.model_loads.append(_literal(file, literal, "model file", string=True))


def _assets_dir(app_dir: Path, files: list[Path]) -> Path:
    assets = sorted(p for p in app_dir.rglob("src/main/assets") if p.is_dir()
                    and not any(part in SKIP_DIRS for part in p.relative_to(app_dir).parts))
    modules = {p.relative_to(app_dir).parts[0] for p in files}
    assets = [p for p in assets if p.relative_to(app_dir).parts[0] in modules] or assets
    if len(assets) > 1:
        raise InputError(f"several assets folders: {', '.join(str(p.relative_to(app_dir)) for p in assets)}",
                         hint="ftk deploy expects one app module")
    if assets:
        return assets[0]
    for path in files:  # the folder the sources' module loads assets from: <module>/src/main/assets
        parts = path.relative_to(app_dir).parts
        if "main" in parts:
            return app_dir.joinpath(*parts[:parts.index("main") + 1], "assets")
    raise InputError(f"cannot tell where {app_dir} keeps its assets (no src/main folder)",
                     hint="point --app at the Android project root")


def find_app(app_dir: str | Path) -> AndroidApp:
    """Parse every Kotlin source of the app (refusing unparsable or non-UTF-8 files with file:line)."""
    app_dir = Path(app_dir)
    if not app_dir.is_dir():
        raise InputError(f"app folder not found: {app_dir}", hint="pass --app with the Android project root")
    warnings: list[str] = []
    paths = source_files(app_dir, warnings)
    if not paths:
        raise InputError(f"no Kotlin sources (.kt) under {app_dir}", hint="point --app at the app checkout root")
    files = {p: parse_file(p, app_dir) for p in paths}
    app = AndroidApp(app_dir, files, _assets_dir(app_dir, paths), warnings=warnings)
    for file in files.values():
        _read_declarations(app, file)
    return app


def format_threshold(value: float, float32: bool = False) -> str:
    """The literal that makes the app accept exactly the scores ftk accepts (``score >= value``).

    A Double literal is the shortest text that reads back as ``value``; a Float literal (``0.5f``) is the smallest
    float32 not below ``value`` (the app's Float scores compare against that).
    """
    if not float32:
        return repr(float(value))
    single = np.float32(value)
    if float(single) < value:  # compared as doubles (numpy would compare a Python float as float32)
        single = np.nextafter(single, np.float32(np.inf))
    return str(single) + "f"  # numpy prints the shortest decimal that reads back as this float32


def constant_edits(app: AndroidApp, model_file: str, input_size: int, embedding_dim: int,
                   threshold: float | None) -> dict[Path, list[Edit]]:
    """The edits that set the model's constants in every declaring file (unchanged values make no edit)."""
    edits: dict[Path, list[Edit]] = {}

    def put(literal: Literal, new: str) -> None:
        if literal.value != new:
            edits.setdefault(literal.file.path, []).append(literal.edit(new))

    for literal in app.sizes:
        put(literal, str(input_size))
    for literal in app.dims:
        put(literal, str(embedding_dim))
    for literal in app.model_loads:
        put(literal, model_file)
    current = app.threshold
    if threshold is not None and current is not None:
        is_float = current.value.lower().endswith("f")
        new = format_threshold(threshold, is_float)
        if not math.isclose(float(current.value.rstrip("fF")), float(new.rstrip("fF")), rel_tol=0, abs_tol=0):
            put(current, new)
    return edits
