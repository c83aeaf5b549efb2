"""How the app prepares a face, read from its Kotlin, and the smallest edits that make it use the model's own crop.

The shapes ftk deploy recognises (each line may be indented; names of variables are free; comments are ignored):

- detector: a ``FaceDetectorOptions.Builder()`` chain in each activity. For a model aligned on landmarks its
  landmark setting becomes ``.setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)``: an existing
  ``.setLandmarkMode(...)`` or the common mix-up ``.setContourMode(FaceDetectorOptions.LANDMARK_MODE_NONE)`` is
  replaced, a chain without one gets it added; a real contour setting (``CONTOUR_MODE_*``) is kept;
- crop: ``val faceBitmap = cropAndResizeFace(imageProxy, face)`` directly in the body of a function returning Unit,
  the bitmap used once, as ``convertBitmapToByteBuffer(faceBitmap)``; it becomes ``val faceInput =
  FtkFaceInput.fromImageProxy(imageProxy, face) ?: return`` and ``faceInput``;
- records: ``putString(embedding.contentToString(), ...)`` (enrolment) becomes ``putString(FtkRecords.key(embedding),
  ...)``; in matching, ``for (key in prefs.all.keys)`` iterates ``FtkFaceInput.recordsOfThisModel(...)``, the key
  parse ``key.removeSurrounding("[", "]").split(", ").map { it.toFloat() }.toFloatArray()`` becomes
  ``FtkRecords.embeddingOf(key) ?: continue``, and a running best starting at ``Float.MIN_VALUE`` (the smallest
  *positive* float) starts at ``Float.NEGATIVE_INFINITY``.

Code already in the patched shape is recognised as such (a second deploy is a no-op); the old and the new shape
side by side, or anything else, is reported as found, and deploy refuses unless told to keep the app's own
preprocessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from toolkit.spec import ModelSpec

_BUILDER_RE = re.compile(r"FaceDetectorOptions\s*\.\s*Builder\s*\(\s*\)(?P<chain>(?:\s*\.\s*\w+\s*\([^()]*\))*)")
# Only landmark settings: setLandmarkMode(...) and the mix-up setContourMode(LANDMARK_MODE_*); a real contour
# setting (CONTOUR_MODE_*) is left alone.
_LANDMARK_CALL_RE = re.compile(r"\.\s*(?:setLandmarkMode\s*\(\s*FaceDetectorOptions\s*\.\s*\w+|"
                               r"setContourMode\s*\(\s*FaceDetectorOptions\s*\.\s*LANDMARK_MODE_\w+)\s*\)")
_LANDMARKS_ON = ".setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)"
_CROP_RE = re.compile(r"^(?P<indent>[ \t]*)val (?P<var>\w+) = cropAndResizeFace\(\s*(?P<proxy>\w+)\s*,\s*"
                      r"(?P<face>\w+)\s*\)[ \t]*$", re.M)
_FTK_CROP_RE = re.compile(r"\bFtkFaceInput\s*\.\s*fromImageProxy\s*\(")
_FUN_HEADER_RE = re.compile(r"\s*(?:@[\w.]+(?:\([^)]*\))?\s*)*(?:(?:private|internal|protected|public|override|open|"
                            r"final|suspend|inline)\s+)*fun\s+(?:<[^>]*>\s*)?\w+\s*\([^)]*\)\s*(?::\s*Unit\s*)?")
_FUN_KEYWORD_RE = re.compile(r"\bfun\b")
_STORE_RE = re.compile(r"putString\(\s*(?P<var>\w+)\.contentToString\(\)\s*,")
_FTK_STORE = "putString(FtkRecords.key("
_LOOP_RE = re.compile(r"for \((?P<key>\w+) in (?P<keys>[\w.]+\.all\.keys)\)")
_FTK_LOOP = "FtkFaceInput.recordsOfThisModel("
_PARSE_RE = re.compile(r"val (?P<var>\w+) = (?P<key>\w+)\.removeSurrounding\(\"\[\", \"\]\"\)\.split\(\", \"\)"
                       r"\.map \{ it\.toFloat\(\) \}\.toFloatArray\(\)")
_FTK_PARSE = "FtkRecords.embeddingOf("
_BEST_RE = re.compile(r"(?P<head>var \w+(?:\s*:\s*Float)?\s*=\s*)Float\.MIN_VALUE\b")
_PACKAGE_RE = re.compile(r"^package\s+(?P<name>[\w.]+)", re.M)
_IMPORT_RE = re.compile(r"^import\s+[\w.]+(?:\s+as\s+\w+)?[ \t]*$", re.M)


@dataclass
class AppPreprocessing:
    """What deploy found in the app's face handling, and the new text of every file it would edit."""

    package: str | None
    source_dir: Path | None
    texts: dict[Path, str]  # new text per file that changes
    found: list[str] = field(default_factory=list)  # what is there now, in words
    problems: list[str] = field(default_factory=list)  # why ftk cannot patch it (empty: it can)
    landmarks: str = "unknown"  # "on" when every activity's detector computes landmarks, else "off" (before edits)
    uses_ftk: bool = False  # some activity already crops with FtkFaceInput (an earlier deploy)

    @property
    def recognised(self) -> bool:
        return not self.problems


def code_only(text: str) -> str:
    """``text`` with every comment blanked (same length, newlines kept): patterns never match inside comments."""
    out, i, n = list(text), 0, len(text)
    while i < n:
        two = text[i:i + 2]
        if two == "//" or two == "/*":
            end = text.find("\n", i) if two == "//" else text.find("*/", i + 2)
            end = n if end < 0 else end + (0 if two == "//" else 2)
            for k in range(i, end):
                if out[k] != "\n":
                    out[k] = " "
            i = end
        elif text[i] == '"':  # skip a string literal so a '//' inside it is not a comment
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
        else:
            i += 1
    return "".join(out)


def uses_ftk_preprocessor(text: str) -> bool:
    """The source crops with FtkFaceInput (an earlier ftk deploy), comments aside."""
    return _FTK_CROP_RE.search(code_only(text)) is not None


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _splice(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


def _detector(text: str, code: str, name: str, spec: ModelSpec, plan: AppPreprocessing) -> str:
    builders = list(_BUILDER_RE.finditer(code))
    if len(builders) != 1:
        plan.problems.append(f"{name}: expected one FaceDetectorOptions.Builder() chain, found {len(builders)} "
                             "(detector options built elsewhere?)")
        return text
    chain = builders[0]
    calls = list(_LANDMARK_CALL_RE.finditer(code, chain.start("chain"), chain.end("chain")))
    if len(calls) > 1:
        plan.problems.append(f"{name}: the detector options set the landmark mode {len(calls)} times")
        return text
    on = bool(calls) and re.sub(r"\s+", "", calls[0].group(0)) == _LANDMARKS_ON
    plan.landmarks = "off" if not on or plan.landmarks == "off" else "on"
    said = re.sub(r"\s+", "", calls[0].group(0)) if calls else "no landmark mode (ML Kit's default: none)"
    plan.found.append(f"{name}: detector {said}" + ("" if on else " (no landmarks)"))
    if on or spec.crop != "align":
        return text
    if calls:
        return _splice(text, calls[0].start(), calls[0].end(), _LANDMARKS_ON)
    after = chain.end("chain") if not chain.group("chain") else chain.start("chain")
    following = re.match(r"[ \t]*\n([ \t]*)\.", text[after:])
    insert = f"\n{following.group(1)}{_LANDMARKS_ON}" if following else _LANDMARKS_ON
    return _splice(text, after, after, insert)


def _directly_in_unit_function(code: str, offset: int) -> bool:
    """True when ``offset`` sits directly in the body of a ``fun`` returning Unit (not in a lambda or a nested
    block), so ``?: return`` there compiles and leaves that function."""
    opened: list[int] = []
    for i, ch in enumerate(code[:offset]):
        if ch == "{":
            opened.append(i)
        elif ch == "}" and opened:
            opened.pop()
    if not opened:
        return False
    brace = opened[-1]
    start = max(code.rfind(c, 0, brace) for c in "{};") + 1
    keyword = list(_FUN_KEYWORD_RE.finditer(code, start, brace))
    if not keyword:
        return False  # a lambda, an if/when/for block, a class body
    line_start = code.rfind("\n", 0, keyword[-1].start()) + 1
    return bool(_FUN_HEADER_RE.fullmatch(code[max(line_start, start):brace]))


def _crop(text: str, code: str, name: str, plan: AppPreprocessing) -> str:
    crops = list(_CROP_RE.finditer(code))
    patched = uses_ftk_preprocessor(text)
    if patched and crops:
        plan.problems.append(f"{name}: crops both with cropAndResizeFace and with FtkFaceInput")
        return text
    if patched:
        plan.uses_ftk = True
        plan.found.append(f"{name}: crops with FtkFaceInput (ftk's preprocessor)")
        return text
    if len(crops) != 1:
        plan.problems.append(f"{name}: expected one 'val bitmap = cropAndResizeFace(imageProxy, face)' line, found "
                             f"{len(crops)}")
        return text
    crop = crops[0]
    var = crop.group("var")
    uses = list(re.finditer(rf"\b{var}\b", code[crop.end():]))
    convert = re.compile(rf"convertBitmapToByteBuffer\(\s*{var}\s*\)").search(code, crop.end())
    if len(uses) != 1 or convert is None:
        plan.problems.append(f"{name}: the cropped bitmap {var!r} is not used exactly once, as "
                             f"convertBitmapToByteBuffer({var})")
        return text
    if not _directly_in_unit_function(code, crop.start()):
        plan.problems.append(f"{name}: cropAndResizeFace is called inside a lambda or a function that returns a "
                             "value (ftk's replacement returns early when a face lacks landmarks)")
        return text
    plan.found.append(f"{name}: crops with cropAndResizeFace + convertBitmapToByteBuffer (box, no margin, "
                      "sensor frame)")
    line = (f"{crop.group('indent')}val faceInput = FtkFaceInput.fromImageProxy({crop.group('proxy')}, "
            f"{crop.group('face')}) ?: return")
    text = _splice(text, convert.start(), convert.end(), "faceInput")  # the later edit first: offsets hold
    return _splice(text, crop.start(), crop.end(), line)


def _sub_one(text: str, code: str, pattern: re.Pattern, repl: Callable[[re.Match], str], done: str, what: str,
             name: str, plan: AppPreprocessing, required: bool = True) -> str:
    """Replace the one match of ``pattern`` in code; already-patched code (``done`` there) passes unchanged."""
    matches = list(pattern.finditer(code))
    if not matches and (done in code or not required):
        return text
    if len(matches) != 1:
        plan.problems.append(f"{name}: expected one {what}, found {len(matches)}")
        return text
    m = matches[0]
    return _splice(text, m.start(), m.end(), repl(m))


def _matching(text: str, name: str, plan: AppPreprocessing) -> str:
    plan.found.append(f"{name}: matches stored keys by cosine")
    edits = ((_BEST_RE, lambda m: m["head"] + "Float.NEGATIVE_INFINITY", "Float.NEGATIVE_INFINITY",
              "running best starting at Float.MIN_VALUE", False),
             (_LOOP_RE, lambda m: f"for ({m['key']} in {_FTK_LOOP}{m['keys']}))", _FTK_LOOP,
              "'for (key in prefs.all.keys)' loop", True),
             (_PARSE_RE, lambda m: f"val {m['var']} = {_FTK_PARSE}{m['key']}) ?: continue", _FTK_PARSE,
              "key parse 'key.removeSurrounding(\"[\", \"]\").split(\", \")...'", True))
    for pattern, repl, done, what, required in edits:  # each on the text the previous edit left
        text = _sub_one(text, code_only(text), pattern, repl, done, what, name, plan, required)
    return text


def _store(text: str, path: Path, root: Path, package: str | None, plan: AppPreprocessing) -> str:
    name = _rel(path, root)
    plan.found.append(f"{name}: stores records keyed by the embedding")
    text = _sub_one(text, code_only(text), _STORE_RE, lambda m: f"{_FTK_STORE}{m['var']}),", _FTK_STORE,
                    "putString(embedding.contentToString(), ...)", name, plan)
    own = _PACKAGE_RE.search(text)
    needed = f"import {package}.FtkRecords"
    if package and own and own.group("name") != package and needed not in text:
        imports = list(_IMPORT_RE.finditer(text))
        at = imports[-1].end() if imports else own.end()
        text = _splice(text, at, at, "\n" + needed)
    return text


def plan_app_preprocessing(root: Path, spec: ModelSpec, activities: dict[Path, str], sources: dict[Path, str],
                           matching: Path) -> AppPreprocessing:
    """The edits that make ``activities`` (path -> current text, constants already patched) crop with ftk.

    ``sources`` is every Kotlin/Java file's text (to find where records are stored); ``matching`` the activity
    that compares embeddings.
    """
    packages = {m.group("name") for t in activities.values() for m in [_PACKAGE_RE.search(t)] if m}
    first = sorted(activities)[0]
    plan = AppPreprocessing(package=next(iter(packages)) if len(packages) == 1 else None,
                            source_dir=first.parent, texts={})
    if plan.package is None:
        plan.problems.append(f"the activities declare {len(packages)} packages, ftk deploy expects one")
    for path, text in sorted(activities.items()):
        name = _rel(path, root)
        new = _detector(text, code_only(text), name, spec, plan)
        new = _crop(new, code_only(new), name, plan)
        if path == matching:
            new = _matching(new, name, plan)
        if new != text:
            plan.texts[path] = new
    stores = [p for p, t in sorted(sources.items()) if _STORE_RE.search(code_only(t)) or _FTK_STORE in t]
    if len(stores) != 1:
        plan.problems.append(f"expected one file that stores records with putString(embedding.contentToString(), "
                             f"...), found {len(stores)}")
    for path in stores[:1]:
        text = plan.texts.get(path, activities.get(path, sources[path]))
        new = _store(text, path, root, plan.package, plan)
        if new != text:
            plan.texts[path] = new
    return plan
