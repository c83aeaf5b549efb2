"""How the app prepares a face, read from its Kotlin, and the smallest edits that make it use the model's own crop.

The shapes ftk deploy recognises (each line may be indented; names of variables are free):

- detector: a ``FaceDetectorOptions.Builder()`` chain in each activity with ``.setLandmarkMode(...)`` or the common
  mix-up ``.setContourMode(FaceDetectorOptions.LANDMARK_MODE_NONE)``; for a model aligned on landmarks it becomes
  ``.setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)``;
- crop: ``val faceBitmap = cropAndResizeFace(imageProxy, face)`` in a Unit function, the bitmap used once, as
  ``convertBitmapToByteBuffer(faceBitmap)``; it becomes ``val faceInput = FtkFaceInput.fromImageProxy(imageProxy,
  face) ?: return`` and ``faceInput``;
- records: ``putString(embedding.contentToString(), ...)`` (enrolment) becomes ``putString(FtkRecords.key(embedding),
  ...)``; in matching, ``for (key in prefs.all.keys)`` iterates ``FtkFaceInput.recordsOfThisModel(...)``, the key
  parse ``key.removeSurrounding("[", "]").split(", ").map { it.toFloat() }.toFloatArray()`` becomes
  ``FtkRecords.embeddingOf(key) ?: continue``, and a running best starting at ``Float.MIN_VALUE`` (the smallest
  *positive* float) starts at ``Float.NEGATIVE_INFINITY``.

Code already in the patched shape is recognised as such (a second deploy is a no-op); anything else is reported
as found, and deploy refuses unless told to keep the app's own preprocessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from toolkit.spec import ModelSpec

_BUILDER_RE = re.compile(r"FaceDetectorOptions\s*\.\s*Builder\s*\(\s*\)(?P<chain>(?:\s*\.\s*\w+\s*\([^()]*\))*)")
_LANDMARK_CALL_RE = re.compile(r"\.\s*set(?:Contour|Landmark)Mode\s*\(\s*FaceDetectorOptions\s*\.\s*"
                               r"(?P<mode>LANDMARK_MODE_\w+|CONTOUR_MODE_\w+)\s*\)")
_LANDMARKS_ON = ".setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)"
_CROP_RE = re.compile(r"^(?P<indent>[ \t]*)val (?P<var>\w+) = cropAndResizeFace\((?P<proxy>\w+), (?P<face>\w+)\)"
                      r"[ \t]*$", re.M)
_FTK_CROP = "FtkFaceInput.fromImageProxy("
_FUN_RE = re.compile(r"^[ \t]*(?:(?:private|internal|protected|public|override)\s+)*fun\s+\w+\s*\([^)]*\)"
                     r"(?P<ret>\s*:\s*[\w.<>?, ]+)?\s*\{", re.M)
_STORE_RE = re.compile(r"putString\(\s*(?P<var>\w+)\.contentToString\(\)\s*,")
_FTK_STORE = "putString(FtkRecords.key("
_LOOP_RE = re.compile(r"for \((?P<key>\w+) in (?P<keys>[\w.]+\.all\.keys)\)")
_FTK_LOOP = "FtkFaceInput.recordsOfThisModel("
_PARSE_RE = re.compile(r"val (?P<var>\w+) = (?P<key>\w+)\.removeSurrounding\(\"\[\", \"\]\"\)\.split\(\", \"\)"
                       r"\.map \{ it\.toFloat\(\) \}\.toFloatArray\(\)")
_FTK_PARSE = "FtkRecords.embeddingOf("
_BEST_RE = re.compile(r"(?P<head>var \w+(?:\s*:\s*Float)?\s*=\s*)Float\.MIN_VALUE\b")
_PACKAGE_RE = re.compile(r"^package\s+(?P<name>[\w.]+)", re.M)


@dataclass
class AppPreprocessing:
    """What deploy found in the app's face handling, and the new text of every file it would edit."""

    package: str | None
    source_dir: Path | None
    texts: dict[Path, str]  # new text per file that changes
    found: list[str] = field(default_factory=list)  # what is there now, in words
    problems: list[str] = field(default_factory=list)  # why ftk cannot patch it (empty: it can)
    landmarks: str = "unknown"  # "on" when every activity's detector computes landmarks, else "off" (before edits)

    @property
    def recognised(self) -> bool:
        return not self.problems


def _rel(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _detector(text: str, name: str, spec: ModelSpec, plan: AppPreprocessing) -> str:
    builders = list(_BUILDER_RE.finditer(text))
    if len(builders) != 1:
        plan.problems.append(f"{name}: expected one FaceDetectorOptions.Builder() chain, found {len(builders)} "
                             "(detector options built elsewhere?)")
        return text
    chain = builders[0]
    calls = list(_LANDMARK_CALL_RE.finditer(chain.group("chain")))
    if len(calls) != 1:
        plan.problems.append(f"{name}: the detector options set no landmark mode ftk recognises")
        return text
    call = calls[0]
    on = call.group(0).replace(" ", "") == _LANDMARKS_ON
    plan.landmarks = "off" if not on or plan.landmarks == "off" else "on"
    plan.found.append(f"{name}: detector {call.group(0).strip()}" + ("" if on else " (no landmarks)"))
    if on or spec.crop != "align":
        return text
    start = chain.start("chain") + call.start()
    return text[:start] + _LANDMARKS_ON + text[start + len(call.group(0)):]


def _enclosing_function_returns_unit(text: str, offset: int) -> bool:
    functions = [m for m in _FUN_RE.finditer(text) if m.start() < offset]
    return bool(functions) and functions[-1].group("ret") is None


def _crop(text: str, name: str, plan: AppPreprocessing) -> str:
    if _FTK_CROP in text:
        plan.found.append(f"{name}: crops with FtkFaceInput (ftk's preprocessor)")
        return text
    crops = list(_CROP_RE.finditer(text))
    if len(crops) != 1:
        plan.problems.append(f"{name}: expected one 'val bitmap = cropAndResizeFace(imageProxy, face)' line, found "
                             f"{len(crops)}")
        return text
    crop = crops[0]
    var = crop.group("var")
    uses = [m for m in re.finditer(rf"\b{var}\b", text) if m.start() > crop.end()]
    convert = re.compile(rf"convertBitmapToByteBuffer\(\s*{var}\s*\)")
    if len(uses) != 1 or not convert.search(text, crop.end()):
        plan.problems.append(f"{name}: the cropped bitmap {var!r} is not used exactly once, as "
                             f"convertBitmapToByteBuffer({var})")
        return text
    if not _enclosing_function_returns_unit(text, crop.start()):
        plan.problems.append(f"{name}: cropAndResizeFace is called outside a function returning Unit")
        return text
    plan.found.append(f"{name}: crops with cropAndResizeFace + convertBitmapToByteBuffer (box, no margin, "
                      "sensor frame)")
    line = (f"{crop.group('indent')}val faceInput = FtkFaceInput.fromImageProxy({crop.group('proxy')}, "
            f"{crop.group('face')}) ?: return")
    text = text[:crop.start()] + line + text[crop.end():]
    return convert.sub("faceInput", text, count=1)


def _sub_one(text: str, pattern: re.Pattern, repl: Callable[[re.Match], str], done: str, what: str, name: str,
             plan: AppPreprocessing) -> str:
    """Replace the one match of ``pattern``; already-patched code (``done`` present) passes unchanged."""
    matches = list(pattern.finditer(text))
    if done in text and not matches:
        return text
    if len(matches) != 1:
        plan.problems.append(f"{name}: expected one {what}, found {len(matches)}")
        return text
    m = matches[0]
    return text[:m.start()] + repl(m) + text[m.end():]


def _matching(text: str, name: str, plan: AppPreprocessing) -> str:
    plan.found.append(f"{name}: matches stored keys by cosine")
    text = _sub_one(text, _LOOP_RE, lambda m: f"for ({m['key']} in {_FTK_LOOP}{m['keys']}))", _FTK_LOOP,
                    "'for (key in prefs.all.keys)' loop", name, plan)
    text = _sub_one(text, _PARSE_RE, lambda m: f"val {m['var']} = {_FTK_PARSE}{m['key']}) ?: continue", _FTK_PARSE,
                    "key parse 'key.removeSurrounding(\"[\", \"]\").split(\", \")...'", name, plan)
    return _BEST_RE.sub(lambda m: m["head"] + "Float.NEGATIVE_INFINITY", text)


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
        new = _crop(_detector(text, name, spec, plan), name, plan)
        if path == matching:
            new = _matching(new, name, plan)
        if new != text:
            plan.texts[path] = new
    stores = [p for p, t in sorted(sources.items()) if _STORE_RE.search(t) or _FTK_STORE in t]
    if len(stores) != 1:
        plan.problems.append(f"expected one file that stores records with putString(embedding.contentToString(), "
                             f"...), found {len(stores)}")
    for path in stores[:1]:
        text = plan.texts.get(path, activities.get(path, sources[path]))
        plan.found.append(f"{_rel(path, root)}: stores records keyed by the embedding")
        new = _sub_one(text, _STORE_RE, lambda m: f"{_FTK_STORE}{m['var']}),", _FTK_STORE,
                       "putString(embedding.contentToString(), ...)", _rel(path, root), plan)
        if new != text:
            plan.texts[path] = new
    return plan
