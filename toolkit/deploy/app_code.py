"""How an app prepares faces and keeps records, read from its Kotlin parse tree, and the smallest patch that makes it
compute what ftk measured.

:func:`survey` finds, each with ``file:line``: the crop functions (``fun name(..: ImageProxy, ..: Face): Bitmap``)
and every call of them, the ``FaceDetectorOptions.Builder()`` chains and whether landmarks are on, the functions
that build the interpreter input and whether they normalise pixels, where embeddings become record keys and where
keys are parsed back. :func:`plan_patch` turns a survey into byte-range edits:

- the crop function's *body* is replaced by a call of the generated ``FtkFaceInput.bitmapFromImageProxy`` (its
  return type becomes ``Bitmap?``); each call site gets ``?: return@label <proxy>.close()`` so a frame whose face
  lacks a landmark is skipped (and released), never guessed; the call sites stay where they are, inside lambdas;
- landmarks on in every detector chain (models aligned on landmarks);
- record keys carry the model id (``FtkRecords.key(embedding)``) and the key parse skips other models' records
  (``FtkRecords.embeddingOf(key) ?: continue``); a running best starting at ``Float.MIN_VALUE`` (the smallest
  *positive* float) starts at ``Float.NEGATIVE_INFINITY``; ``score > threshold`` becomes ``>=`` (ftk accepts at
  ``score >= threshold``).

Code already in the patched shape is recognised (a second deploy changes nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.deploy.android import AndroidApp
from toolkit.deploy.kotlin_source import Edit, KotlinFile, ancestor, child, return_target
from toolkit.spec import ModelSpec

LANDMARKS_ON = "setLandmarkMode(FaceDetectorOptions.LANDMARK_MODE_ALL)"
FTK_CROP = "FtkFaceInput.bitmapFromImageProxy"
FTK_KEY = "FtkRecords.key"
FTK_PARSE = "FtkRecords.embeddingOf"
PIXEL_LITERALS = {"255", "255f", "255.0", "255.0f", "127.5", "127.5f", "128", "128f", "128.0", "128.0f"}


@dataclass
class CropFunction:
    file: KotlinFile
    node: object  # function_declaration
    name: str
    proxy_param: str
    face_param: str
    patched: bool  # its body already calls ftk's preprocessor


@dataclass
class Survey:
    """What the app does with faces, each finding with file:line, and why ftk cannot patch it (``problems``)."""

    crops: list[CropFunction] = field(default_factory=list)
    crop_calls: list[tuple[KotlinFile, object]] = field(default_factory=list)
    detectors: list[tuple[KotlinFile, object, object | None, bool]] = field(default_factory=list)
    buffers: list[tuple[KotlinFile, object, str | None]] = field(default_factory=list)  # (file, fun, normalises)
    findings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def crop_file(self) -> KotlinFile | None:
        return self.crops[0].file if self.crops else None

    @property
    def landmarks_on(self) -> bool:
        return bool(self.detectors) and all(on for _, _, _, on in self.detectors)


# ----------------------------------------------------------------------------------------------------------------
# survey (read only)
# ----------------------------------------------------------------------------------------------------------------
def _param_types(file: KotlinFile, fun) -> dict[str, str]:
    params = child(fun, "function_value_parameters")
    out = {}
    for param in (params.named_children if params is not None else []):
        if param.type == "parameter" and len(param.named_children) >= 2:
            out[file.text(param.named_children[0])] = file.text(param.named_children[1]).rstrip("?")
    return out


def _return_type(file: KotlinFile, fun) -> object | None:
    return next((c for c in fun.named_children if c.type in ("user_type", "nullable_type")), None)


def _crop_functions(file: KotlinFile) -> list[CropFunction]:
    out = []
    for fun in file.functions():
        types = _param_types(file, fun)
        returned = _return_type(file, fun)
        if returned is None or file.text(returned).rstrip("?") != "Bitmap":
            continue
        proxy = next((n for n, t in types.items() if t == "ImageProxy"), None)
        face = next((n for n, t in types.items() if t == "Face"), None)
        if proxy and face:
            body = child(fun, "function_body")
            patched = body is not None and FTK_CROP in file.text(body)
            out.append(CropFunction(file, fun, file.name_of(fun), proxy, face, patched))
    return out


def _landmark_setter(file: KotlinFile, builder) -> tuple[object | None, object | None]:
    """(the landmark setting call in the chain that starts at ``builder``, the chain's outermost call)."""
    setter, node = None, builder
    while node.parent is not None and node.parent.type == "navigation_expression" \
            and node.parent.parent is not None and node.parent.parent.type == "call_expression":
        node = node.parent.parent
        name = file.name_of(node)
        args = "".join(file.text(a) for a in file.arguments(node))
        if name == "setLandmarkMode" or (name == "setContourMode" and "LANDMARK_MODE" in args):
            setter = node
    return setter, node


def _detectors(file: KotlinFile, survey: Survey) -> None:
    for call in file.nodes("call_expression"):
        if file.name_of(call) != "Builder" or file.receiver(call) != "FaceDetectorOptions":
            continue
        setter, _ = _landmark_setter(file, call)
        args = "".join(file.text(a) for a in file.arguments(setter)) if setter is not None else ""
        on = setter is not None and file.name_of(setter) == "setLandmarkMode" and args.endswith("LANDMARK_MODE_ALL")
        survey.detectors.append((file, call, setter, on))
        said = f"{file.name_of(setter)}({args})" if setter is not None else "no landmark mode (ML Kit's default: none)"
        survey.findings.append(f"{file.where(call)}: face detector options: {said}: landmarks "
                               f"{'on' if on else 'off'}")


def _normalisation(file: KotlinFile, fun) -> str | None:
    """How the function scales pixels before the interpreter, or None when it feeds raw 0..255 values."""
    for call in file.nodes("call_expression", under=fun):
        if file.name_of(call) == "NormalizeOp":
            return f"NormalizeOp{file.text(child(call, 'value_arguments'))}"
    for binary in file.nodes("multiplicative_expression", "additive_expression", "binary_expression", under=fun):
        operands = [file.text(c) for c in binary.named_children]
        operator = next((file.text(c) for c in binary.children if not c.is_named), "")
        if operator in ("/", "-", "*") and any(o in PIXEL_LITERALS for o in operands):
            return f"pixel arithmetic {file.text(binary)[:40]!r}"
    return None


def _builds_input(file: KotlinFile, fun) -> bool:
    """The function turns pixels into interpreter input (TFLite support's TensorImage, or floats into a buffer)."""
    for call in file.nodes("call_expression", under=fun):
        name = file.name_of(call)
        if name in ("putFloat", "CastOp", "NormalizeOp") or (name == "fromBitmap"
                                                              and file.receiver(call) == "TensorImage"):
            return True
    return False


def _face_reads(file: KotlinFile, survey: Survey) -> None:
    """Where the code reads a face's box or landmarks outside a recognised crop function: crops of another shape."""
    lines = set()
    for nav in file.nodes("navigation_expression"):
        last = nav.named_children[-1]
        if file.text(last) in ("boundingBox", "getLandmark", "allLandmarks") and file.line(nav) not in lines:
            lines.add(file.line(nav))
            fun = ancestor(nav, "function_declaration")
            where = f" in {file.name_of(fun)}" if fun is not None else ""
            survey.findings.append(f"{file.where(nav)}: reads the face's {file.text(last)}{where}")


def _buffers(file: KotlinFile, survey: Survey) -> None:
    for fun in file.functions():
        if not _builds_input(file, fun):
            continue
        normalises = _normalisation(file, fun)
        survey.buffers.append((file, fun, normalises))
        how = f"normalises pixels itself ({normalises})" if normalises else "feeds raw 0..255 pixel values"
        survey.findings.append(f"{file.where(fun)}: {file.name_of(fun)} builds the interpreter input: {how}")


def survey(app: AndroidApp) -> Survey:
    """Everything deploy needs to know about the app's face handling, with nothing changed."""
    result = Survey()
    for file in app.files.values():
        crops = _crop_functions(file)
        result.crops += crops
        for crop in crops:
            state = "ftk's preprocessor (patched)" if crop.patched else "its own crop"
            result.findings.append(f"{file.where(crop.node)}: {crop.name}({crop.proxy_param}: ImageProxy, "
                                   f"{crop.face_param}: Face): Bitmap crops faces with {state}")
            for call in file.calls(crop.name):
                result.crop_calls.append((file, call))
                result.findings.append(f"{file.where(call)}: {crop.name} called")
        if not crops:
            _face_reads(file, result)
        _detectors(file, result)
        _buffers(file, result)
    for lit in app.sizes + app.dims + app.thresholds + app.model_loads:
        result.findings.append(f"{lit.where}: {lit.name} = {lit.value}")
    return result


# ----------------------------------------------------------------------------------------------------------------
# the patch
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Patch:
    edits: dict[Path, list[Edit]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    found: list[str] = field(default_factory=list)

    def add(self, file: KotlinFile, edit: Edit) -> None:
        self.edits.setdefault(file.path, []).append(edit)


def _patch_crop(crop: CropFunction, spec: ModelSpec, patch: Patch) -> None:
    if crop.patched:
        return
    file, fun = crop.file, crop.node
    body = child(fun, "function_body")
    if body is None or not file.text(body).startswith("{"):
        patch.problems.append(f"{file.where(fun)}: {crop.name} has an expression body; ftk replaces a block body")
        return
    indent, nl = file.line_indent(fun), file.newline_at(fun)
    inner = indent + "    "
    text = (f"{{{nl}{inner}// ftk deploy: the model's own crop ({_crop_words(spec)}), generated from its contract; "
            f"null when the face lacks a landmark{nl}{inner}return {FTK_CROP}({crop.proxy_param}, "
            f"{crop.face_param}){nl}{indent}}}")
    patch.add(file, Edit(body.start_byte, body.end_byte, text))
    returned = _return_type(file, fun)
    if returned.type != "nullable_type":
        patch.add(file, Edit(returned.start_byte, returned.end_byte, file.text(returned) + "?"))


def _crop_words(spec: ModelSpec) -> str:
    return ("5-point alignment" if spec.crop == "align" else f"face box + {spec.box_margin} px") + \
        f", {spec.input_size}x{spec.input_size}"


def _patch_call(file: KotlinFile, call, crop: CropFunction, patch: Patch) -> None:
    after = call.next_sibling
    if after is not None and after.type == "?:":  # already `crop(...) ?: return@...`
        return
    prop = call.parent
    if prop.type != "property_declaration" or file.initializer(prop) != call:
        patch.problems.append(f"{file.where(call)}: {crop.name}(...) is used inside an expression "
                              f"({file.text(prop)[:50]!r}); ftk patches 'val bitmap = {crop.name}(...)'")
        return
    label, scope = return_target(file, call)
    if scope is None:
        patch.problems.append(f"{file.where(call)}: {crop.name} is called outside a function")
        return
    if scope.type == "lambda_literal" and label is None:
        patch.problems.append(f"{file.where(call)}: {crop.name} is called in a lambda ftk cannot name for "
                              "return@label")
        return
    if scope.type == "function_declaration" and _return_type(file, scope) is not None \
            and file.text(_return_type(file, scope)) != "Unit":
        patch.problems.append(f"{file.where(call)}: {crop.name} is called in {file.name_of(scope)}, which returns "
                              "a value; ftk skips a face without landmarks with a bare return")
        return
    args = file.arguments(call)
    proxy = file.text(args[0]) if args else ""
    release = f" {proxy}.close()" if proxy.isidentifier() else ""
    skip = f" ?: return@{label}{release}" if label else f" ?: return{release}"
    patch.add(file, Edit(call.end_byte, call.end_byte, skip))


def _patch_detectors(survey_: Survey, spec: ModelSpec, patch: Patch) -> None:
    if spec.crop != "align":
        return
    for file, builder, setter, on in survey_.detectors:
        if on:
            continue
        if setter is not None:
            name = setter.named_children[0].named_children[-1]  # the setter's identifier
            patch.add(file, Edit(name.start_byte, setter.end_byte, LANDMARKS_ON))
        else:  # on a line of its own when the chain continues on the next line
            following = re.match(rb"[ \t]*(\r?\n)([ \t]*)\.", file.content[builder.end_byte:builder.end_byte + 200])
            lead = (following.group(1) + following.group(2)).decode() if following else ""
            patch.add(file, Edit(builder.end_byte, builder.end_byte, f"{lead}.{LANDMARKS_ON}"))


def _loop_variable(file: KotlinFile, node) -> str | None:
    loop = ancestor(node, "for_statement")
    decl = child(loop, "variable_declaration") if loop is not None else None
    return file.text(decl) if decl is not None else None


def _patch_key_parse(file: KotlinFile, patch: Patch) -> int:
    """Key parses (``key....toFloatArray()`` on a loop variable) -> FtkRecords.embeddingOf(key) ?: continue."""
    count = 0
    for call in file.calls("toFloatArray"):
        root = call
        while root.named_children and root.named_children[0].type in ("navigation_expression", "call_expression"):
            root = root.named_children[0]
        key = file.text(root.named_children[0]) if root.named_children else None
        if key is None or key != _loop_variable(file, call) or call.parent.type != "property_declaration":
            continue
        count += 1
        patch.add(file, Edit(call.start_byte, call.end_byte, f"{FTK_PARSE}({key}) ?: continue"))
        patch.found.append(f"{file.where(call)}: stored keys parsed back into embeddings")
    return count + sum(1 for c in file.calls("embeddingOf") if file.receiver(c) == "FtkRecords")


def _patch_matching(file: KotlinFile, patch: Patch) -> None:
    for prop in file.nodes("property_declaration"):
        value = file.initializer(prop)
        if value is not None and file.text(value) == "Float.MIN_VALUE" and file.text(prop).startswith("var"):
            patch.add(file, Edit(value.start_byte, value.end_byte, "Float.NEGATIVE_INFINITY"))
    for binary in file.nodes("binary_expression", "comparison_expression"):
        parts = binary.children
        if len(parts) == 3 and parts[1].type == ">" and file.text(parts[2]).lower().endswith("threshold"):
            patch.add(file, Edit(parts[1].start_byte, parts[1].end_byte, ">="))


def _key_sources(file: KotlinFile, node, depth: int = 0) -> list:
    """The ``x.contentToString()`` calls a record key expression comes from (through locals and parameters)."""
    if depth > 3:
        return []
    if node.type == "call_expression" and file.name_of(node) == "contentToString":
        return [node]
    if node.type == "call_expression" and file.name_of(node) == "key" and file.receiver(node) == "FtkRecords":
        return [node]
    if node.type != "identifier":
        return []
    name, fun = file.text(node), ancestor(node, "function_declaration")
    if fun is None:
        return []
    for prop in file.nodes("property_declaration", under=fun):
        value = file.initializer(prop)
        if file.name_of(prop) == name and value is not None and prop.start_byte < node.start_byte:
            return _key_sources(file, value, depth + 1)
    params = list(_param_types(file, fun))
    if name not in params:
        return []
    index = params.index(name)
    out = []
    for call in file.calls(file.name_of(fun)):
        args = file.arguments(call)
        if index < len(args) and args[index].named_children:
            out += _key_sources(file, args[index].named_children[0], depth + 1)
    return out


def _patch_stores(app: AndroidApp, patch: Patch) -> int:
    sources = []
    for file in app.files.values():
        for put in file.calls("putString"):
            args = file.arguments(put)
            if args and args[0].named_children:
                sources += [(file, s) for s in _key_sources(file, args[0].named_children[0])]
    for file, source in sources:
        patch.found.append(f"{file.where(source)}: records are keyed by the embedding")
        if file.name_of(source) == "contentToString":
            receiver = file.receiver(source)
            patch.add(file, Edit(source.start_byte, source.end_byte, f"{FTK_KEY}({receiver})"))
    return len(sources)


def file_package(file: KotlinFile) -> str | None:
    header = child(file.root, "package_header")
    ident = child(header, "qualified_identifier") or child(header, "identifier") if header is not None else None
    return file.text(ident) if ident is not None else None


def _imports(app: AndroidApp, patch: Patch, package: str) -> None:
    """``import <package>.FtkRecords`` (etc.) in edited files of another package, after their last import."""
    for path, edits in patch.edits.items():
        file = app.files[path]
        if file_package(file) == package:
            continue
        added = " ".join(e.new for e in edits)
        for name in ("FtkFaceInput", "FtkRecords"):
            line = f"import {package}.{name}"
            if f"{name}." in added and line not in file.text(file.root):
                anchor = (list(file.nodes("import")) or [child(file.root, "package_header")])[-1]
                if anchor is not None:
                    edits.append(Edit(anchor.end_byte, anchor.end_byte, file.newline_at(anchor) + line))


def plan_patch(app: AndroidApp, survey_: Survey, spec: ModelSpec, package: str) -> Patch:
    """The edits that make the app crop, match and store as the model's contract says; problems when it cannot.
    ``package``: where the generated files go (edited files elsewhere import from it)."""
    patch = Patch(problems=list(survey_.problems))
    if not survey_.crops:
        patch.problems.append("no crop function found: ftk patches 'fun <name>(<p>: ImageProxy, <f>: Face): Bitmap'")
    if spec.channel_order != "RGB":
        patch.problems.append(f"the model expects {spec.channel_order}; the app's TensorImage feeds RGB")
    for file, fun, normalises in survey_.buffers:
        if normalises:
            patch.problems.append(f"{file.where(fun)}: {file.name_of(fun)} normalises pixels ({normalises}) but "
                                  f"the model normalises inside its graph and expects raw 0..255")
    for crop in survey_.crops:
        _patch_crop(crop, spec, patch)
    names = {c.name: c for c in survey_.crops}
    for file, call in survey_.crop_calls:
        _patch_call(file, call, names[file.name_of(call)], patch)
    _patch_detectors(survey_, spec, patch)
    parses = 0
    for path in {t.file.path for t in app.thresholds}:
        parses += _patch_key_parse(app.files[path], patch)
        _patch_matching(app.files[path], patch)
    stores = _patch_stores(app, patch)
    if parses != 1 or stores != 1:
        patch.problems.append(f"expected one place that stores records keyed by an embedding (putString(<embedding>"
                              f".contentToString(), ...)) and one that parses keys back in the matching loop, found "
                              f"{stores} and {parses}")
    if not survey_.detectors:
        patch.problems.append("no FaceDetectorOptions.Builder() chain found (options built elsewhere?)")
    _imports(app, patch, package)
    crop_files = {c.file.path for c in survey_.crops}
    for file, fun, _ in survey_.buffers:
        if file.path not in crop_files:
            patch.problems.append(f"{file.where(fun)}: {file.name_of(fun)} builds the interpreter input but no crop "
                                  "function ftk recognises is in that file")
    for file, builder, _, _ in survey_.detectors:
        if file.path not in crop_files:
            patch.problems.append(f"{file.where(builder)}: detector options are built outside the files that crop "
                                  "faces (a helper class?)")
    return patch
