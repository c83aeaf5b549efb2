"""Find the face-recognition activities of an Android app by what they declare, and compute their patched text.

An activity is a Kotlin/Java source that declares ``private val inputSize = <int>`` and
``private val embeddingDim = <int>`` (trailing ``//`` comments allowed and kept). The model is the string in the
active (not commented-out) ``FileUtil.loadMappedFile(<ctx>, "<file>.tflite")`` line; the match threshold is
``val threshold = <number>``. Only the literal values change: indentation, spacing and comments stay as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import InputError

SOURCE_SUFFIXES = (".kt", ".java")
SKIP_DIRS = {"build", ".gradle", ".git", ".idea", ".ftk-deploy", "node_modules"}
SETTINGS = ("inputSize", "embeddingDim")

# Loose: anything that looks like a declaration of one of our settings (to catch unexpected forms).
_ANY_DECL_RE = re.compile(r"\b(?:val|var)\s+(?P<name>inputSize|embeddingDim)\b")
# Strict: `[private ]val NAME[: Int] = 123[   // comment]`
_DECL_RE = re.compile(r"^(?P<head>\s*(?:(?:private|internal|protected)\s+)?(?:val|var)\s+(?P<name>inputSize|embeddingDim)"
                      r"(?:\s*:\s*Int)?\s*=\s*)(?P<value>\d+)(?P<tail>\s*(?://.*)?)$")
_ANY_THRESHOLD_RE = re.compile(r"\b(?:val|var)\s+threshold\b")
_THRESHOLD_RE = re.compile(r"^(?P<head>\s*(?:(?:private|internal|protected)\s+)?(?:val|var)\s+threshold"
                           r"(?:\s*:\s*(?:Float|Double))?\s*=\s*)(?P<value>\d+(?:\.\d+)?|\.\d+)(?P<suffix>[fF]?)"
                           r"(?P<tail>\s*(?://.*)?)$")
_LOAD_RE = re.compile(r"""FileUtil\s*\.\s*loadMappedFile\s*\(\s*[^,()]+,\s*"(?P<file>[^"]+)"\s*\)""")


@dataclass
class Occurrence:
    path: Path
    line: int  # 1-based
    value: str
    start: int  # character offsets of the value in the file text
    end: int


@dataclass
class ActivitySource:
    path: Path
    text: str
    declarations: dict[str, Occurrence]  # inputSize / embeddingDim
    model_loads: list[Occurrence]  # active loadMappedFile lines
    threshold: Occurrence | None = None
    threshold_suffix: str = ""

    @property
    def input_size(self) -> int:
        return int(self.declarations["inputSize"].value)

    @property
    def embedding_dim(self) -> int:
        return int(self.declarations["embeddingDim"].value)


@dataclass
class AndroidApp:
    root: Path
    activities: list[ActivitySource]
    assets_dir: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def current_models(self) -> list[str]:
        return sorted({load.value for a in self.activities for load in a.model_loads})

    @property
    def threshold(self) -> Occurrence | None:
        return next((a.threshold for a in self.activities if a.threshold), None)


def source_files(app_dir: Path) -> list[Path]:
    out = []
    for path in sorted(app_dir.rglob("*")):
        rel = path.relative_to(app_dir).parts
        if any(part in SKIP_DIRS for part in rel[:-1]):
            continue
        if path.suffix in SOURCE_SUFFIXES and path.is_file():
            out.append(path)
    return out


def _comment_mask(text: str) -> list[bool]:
    """Per line: True when the whole line is commented out (``//`` line or inside ``/* */``)."""
    mask = []
    in_block = False
    for line in text.splitlines():
        stripped = line.strip()
        if in_block:
            mask.append(True)
            if "*/" in stripped:
                in_block = False
            continue
        if stripped.startswith("/*"):
            mask.append(True)
            in_block = "*/" not in stripped
            continue
        mask.append(stripped.startswith("//") or stripped.startswith("*"))
    return mask


def _scan_source(path: Path, app_dir: Path) -> ActivitySource | None:
    text = path.read_text(encoding="utf-8")
    if not _ANY_DECL_RE.search(text):
        return None
    rel = path.relative_to(app_dir)
    lines = text.splitlines(keepends=True)
    mask = _comment_mask(text)
    offset = 0
    declarations: dict[str, Occurrence] = {}
    loads: list[Occurrence] = []
    threshold = None
    suffix = ""
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        commented = mask[number - 1] if number - 1 < len(mask) else False
        if not commented and _ANY_DECL_RE.search(line):
            match = _DECL_RE.match(line)
            if match is None:
                name = _ANY_DECL_RE.search(line).group("name")
                raise InputError(f"{rel}:{number}: unexpected declaration of {name}: {line.strip()!r}",
                                 hint=f"ftk deploy patches only literal integers such as "
                                      f"'private val {name} = 112 // comment'; edit it by hand or make it literal")
            name = match.group("name")
            if name in declarations:
                raise InputError(f"{rel}:{number}: {name} is declared twice in this file",
                                 hint="keep one declaration per activity")
            declarations[name] = Occurrence(path, number, match.group("value"), offset + match.start("value"),
                                            offset + match.end("value"))
        if not commented and _ANY_THRESHOLD_RE.search(line):
            match = _THRESHOLD_RE.match(line)
            if match is None:
                raise InputError(f"{rel}:{number}: unexpected threshold declaration: {line.strip()!r}",
                                 hint="ftk deploy patches only a literal such as 'val threshold = 0.98'")
            if threshold is not None:
                raise InputError(f"{rel}:{number}: threshold is declared twice in this file",
                                 hint="keep one threshold declaration")
            threshold = Occurrence(path, number, match.group("value"), offset + match.start("value"),
                                   offset + match.end("value"))
            suffix = match.group("suffix")
        if not commented:
            for match in _LOAD_RE.finditer(line):
                # A trailing comment on the same line starts before the call: then it is not active.
                if "//" in line[:match.start()]:
                    continue
                loads.append(Occurrence(path, number, match.group("file"), offset + match.start("file"),
                                        offset + match.end("file")))
        offset += len(raw)
    missing = [name for name in SETTINGS if name not in declarations]
    if missing:
        raise InputError(f"{rel} declares {', '.join(n for n in SETTINGS if n in declarations)} but not "
                         f"{', '.join(missing)}",
                         hint="each activity must declare both 'private val inputSize = N' and "
                              "'private val embeddingDim = D'")
    return ActivitySource(path, text, declarations, loads, threshold, suffix)


def find_app(app_dir: str | Path) -> AndroidApp:
    """Scan the app checkout; refuse when the activities are not where and what ftk expects."""
    app_dir = Path(app_dir)
    if not app_dir.is_dir():
        raise InputError(f"app folder not found: {app_dir}", hint="pass --app with the Android project root")
    activities = [a for a in (_scan_source(p, app_dir) for p in source_files(app_dir)) if a is not None]
    names = ", ".join(str(a.path.relative_to(app_dir)) for a in activities) or "none"
    if len(activities) < 2:
        raise InputError(f"expected two activities declaring inputSize/embeddingDim (the one that registers faces "
                         f"and the one that matches them), found {len(activities)}: {names}",
                         hint="point --app at the app checkout root; is ScannerActivity.kt or "
                              "CheckRecordsActivity.kt missing?")
    with_threshold = [a for a in activities if a.threshold]
    if len(with_threshold) != 1:
        raise InputError(f"expected exactly one activity declaring 'val threshold = ...' (the matching activity), "
                         f"found {len(with_threshold)} among {names}",
                         hint="ftk deploy sets the match threshold there")
    for activity in activities:
        if not activity.model_loads:
            raise InputError(f"{activity.path.relative_to(app_dir)} has no active "
                             "FileUtil.loadMappedFile(context, \"<file>.tflite\") line",
                             hint="uncomment the line that loads the model")
        files = {load.value for load in activity.model_loads}
        if len(files) > 1:
            raise InputError(f"{activity.path.relative_to(app_dir)} loads several models ({', '.join(sorted(files))})",
                             hint="leave one active loadMappedFile line per activity")
    assets = sorted(p for p in app_dir.rglob("src/main/assets") if p.is_dir()
                    and not any(part in SKIP_DIRS for part in p.relative_to(app_dir).parts))
    module_dirs = {a.path.relative_to(app_dir).parts[0] for a in activities}
    assets = [p for p in assets if p.relative_to(app_dir).parts[0] in module_dirs] or assets
    if len(assets) > 1:
        raise InputError(f"several assets folders: {', '.join(str(p.relative_to(app_dir)) for p in assets)}",
                         hint="ftk deploy expects one app module")
    if assets:
        assets_dir = assets[0]
    else:
        # The folder the activities' module would load assets from: <module>/src/main/assets.
        first = activities[0].path.relative_to(app_dir).parts
        main = first.index("main") if "main" in first else None
        if main is None:
            raise InputError(f"cannot tell the assets folder for {activities[0].path}",
                             hint="create <module>/src/main/assets")
        assets_dir = app_dir.joinpath(*first[:main + 1], "assets")
    return AndroidApp(app_dir, activities, assets_dir)


def _replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    return text


def format_threshold(value: float) -> str:
    """A short decimal literal (4 places, trailing zeros dropped): 0.4213, 0.5."""
    text = f"{value:.4f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def patched_sources(app: AndroidApp, model_file: str, input_size: int, embedding_dim: int,
                    threshold: float | None) -> dict[Path, str]:
    """New text for every activity whose content changes (unchanged files are left out: a rerun is a no-op)."""
    out = {}
    for activity in app.activities:
        spans = [
            (activity.declarations["inputSize"].start, activity.declarations["inputSize"].end, str(input_size)),
            (activity.declarations["embeddingDim"].start, activity.declarations["embeddingDim"].end,
             str(embedding_dim)),
        ]
        spans += [(load.start, load.end, model_file) for load in activity.model_loads]
        if threshold is not None and activity.threshold is not None:
            old = activity.threshold
            new_literal = format_threshold(threshold)
            if float(old.value) != float(new_literal):  # same number in another spelling: leave it
                spans.append((old.start, old.end, new_literal))
        new_text = _replace_spans(activity.text, spans)
        if new_text != activity.text:
            out[activity.path] = new_text
    return out
