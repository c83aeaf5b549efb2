"""Parity: does a .tflite compute the same embeddings as the PyTorch checkpoint it was exported from?

Both run on the same face crops (real crops from ``--faces``, else the held-out faces the export recorded, else the stored reference inputs) through the one
Embedder interface. Besides per-image cosine and max abs difference, the report looks at what a face-matching app
actually sees: the pairwise similarity matrix (its deviation is what moves scores across a threshold), whether each
face keeps its nearest neighbour, and whether same/different decisions at a threshold agree.

Default tolerances depend on the artifact's precision (from the export manifest); see ``DEFAULT_TOLERANCES`` and
docs/export.md for the measurements behind them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit import native_logs
from toolkit.checkpoint import load_checkpoint
from toolkit.constants import DEFAULT_PARITY_FACES, DEFAULT_PICK, DEFAULT_THREADS
from toolkit.data.faces import load_face_crops
from toolkit.embedders import TFLiteEmbedder, TorchEmbedder, load_interpreter
from toolkit.errors import InputError
from toolkit.export import fold_for_export, module_path_of_tensor
from toolkit.held_out import load_sample
from toolkit.manifest import contract_for
from toolkit.metrics import embedding_collapse
from toolkit.reference import find_reference_for
from toolkit.reports import calibrated_threshold
from toolkit.spec import reject_unknown_keys
from toolkit.tflite.inspect import inspect_tflite

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "float16", "int8")

# Metric -> (direction, meaning). "min": the value must be >= the tolerance; "max": <= the tolerance.
METRICS: dict[str, tuple[str, str]] = {
    "min_cosine": ("min", "lowest per-image cosine(torch, tflite)"),
    "mean_cosine": ("min", "mean per-image cosine"),
    "max_abs_diff": ("max", "largest |torch - tflite| over all embedding values"),
    "max_similarity_deviation": ("max", "largest |S_torch - S_tflite| over all face pairs (cosine similarity)"),
    "nn_agreement": ("min", "share of faces whose nearest neighbour is the same face in both"),
    "decision_agreement": ("min", "share of pairs with the same same/different decision at the threshold"),
}

# Tuned from measurements (docs/export.md). float32 is the same arithmetic up to op order: measured min cosine
# 1 - 1e-7 and similarity deviation 2e-6 on 200 LFW crops, so the gates sit far below that and still catch a 5%
# change to one layer. int8 is set under the worse of two real-face measurements (200 held-out LFW crops each,
# docs/export.md): pretrained MobileFaceNet with conv+ReLU6 fused mean 0.995, min 0.976-0.980, sim dev <= 0.083,
# nn 0.87-0.91, decisions 0.966-0.968; random-init InceptionResnetV1 with BN re-estimated (the binding case) mean
# 0.985-0.987, min 0.970-0.971, sim dev 0.072-0.076, nn 0.81-0.85, decisions 0.955-0.976. Margins: mean 0.005,
# min 0.02, sim dev 0.017, nn 0.06 (noisiest), decisions 0.025. Tighten with --tolerance for one known model.
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {
        "min_cosine": 0.9999,
        "max_similarity_deviation": 2e-4,
        "max_abs_diff": 2e-3,
        "nn_agreement": 0.98,
        "decision_agreement": 0.99,
    },
    # float16 weights, float32 compute: set from the MobileFaceNet measurement (docs/export.md).
    "float16": {
        "mean_cosine": 0.9999,
        "min_cosine": 0.999,
        "max_similarity_deviation": 5e-3,
        "nn_agreement": 0.95,
        "decision_agreement": 0.99,
    },
    "int8": {
        "mean_cosine": 0.98,
        "min_cosine": 0.95,
        "max_similarity_deviation": 0.10,
        "nn_agreement": 0.75,
        "decision_agreement": 0.93,
    },
}

DEFAULT_LIMIT = DEFAULT_PARITY_FACES
MIN_FACES = 4


@dataclass
class ParityMetrics:
    faces: int
    pairs: int
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    max_similarity_deviation: float
    mean_similarity_deviation: float
    nn_agreement: float
    decision_agreement: float
    threshold: float
    threshold_source: str
    worst: list[tuple[str, float]] = field(default_factory=list)  # (image, cosine), lowest first


@dataclass
class ParityReport:
    model: str
    checkpoint: str
    precision: str
    faces_source: str
    metrics: ParityMetrics
    tolerances: dict[str, float]
    failures: list[str]
    warnings: list[str] = field(default_factory=list)
    model_sha256: str = ""
    checkpoint_sha256: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    def table(self) -> str:
        """A human-readable summary: one row per metric with its tolerance and verdict."""
        m = asdict(self.metrics)
        lines = [
            f"parity: {self.model} ({self.precision}) vs {self.checkpoint}",
            f"faces: {self.metrics.faces} from {self.faces_source}; {self.metrics.pairs} pairs; threshold "
            f"{self.metrics.threshold:.4f} ({self.metrics.threshold_source})",
            f"{'metric':<26} {'value':>12} {'tolerance':>14}  verdict",
        ]
        for name, (direction, _) in METRICS.items():
            value = m[name]
            tol = self.tolerances.get(name)
            if tol is None:
                verdict, tol_text = "", "-"
            else:
                ok = _within(value, tol, direction)
                verdict = "ok" if ok else "FAIL"
                tol_text = f"{'>=' if direction == 'min' else '<='} {_fmt(tol)}"
            lines.append(f"{name:<26} {_fmt(value):>12} {tol_text:>14}  {verdict}")
        lines.append(f"{'mean_similarity_deviation':<26} {_fmt(self.metrics.mean_similarity_deviation):>12}")
        if self.metrics.worst:
            worst = ", ".join(f"{Path(p).name} {c:.5f}" for p, c in self.metrics.worst[:3])
            lines.append(f"lowest cosines: {worst}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        lines.append("PASS" if self.passed else "FAIL: " + "; ".join(self.failures))
        return "\n".join(lines)


def _fmt(v: float) -> str:
    if v != v:  # NaN
        return "nan"
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.6f}".rstrip("0").rstrip(".") if abs(v) < 1 else f"{v:.4f}"
    return f"{v:.3e}"


def _within(value: float, tol: float, direction: str) -> bool:
    if value != value:  # NaN never passes
        return False
    return value >= tol if direction == "min" else value <= tol


def parse_tolerances(items: list[str] | tuple[str, ...] | None) -> dict[str, float]:
    """``["min_cosine=0.999", "nn_agreement=1"]`` -> dict, rejecting unknown names with a did-you-mean."""
    out: dict[str, float] = {}
    for item in items or ():
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise InputError(f"--tolerance expects NAME=VALUE, got {part!r}",
                                 hint=f"names: {', '.join(METRICS)}")
            try:
                out[key.strip()] = float(value)
            except ValueError:
                raise InputError(f"--tolerance {key.strip()} needs a number, got {value!r}") from None
    reject_unknown_keys(out, list(METRICS), where="--tolerance")
    return out


def compare_embeddings(reference: np.ndarray, candidate: np.ndarray, labels: list[str] | None = None,
                       threshold: float | None = None) -> ParityMetrics:
    """All parity metrics for two [N, D] embedding sets of the same faces (row i = face i in both)."""
    a = np.asarray(reference, np.float64)
    b = np.asarray(candidate, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InputError(f"embedding sets differ in shape: {a.shape} vs {b.shape}")
    n = len(a)
    if n < 3:
        raise InputError(f"parity needs at least 3 faces (nearest-neighbour agreement), got {n}")
    an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    cos = np.sum(an * bn, axis=1)
    sa, sb = an @ an.T, bn @ bn.T
    iu = np.triu_indices(n, 1)
    dev = np.abs(sa - sb)[iu]
    source = "given"
    if threshold is None:
        # The median pair similarity puts the most pairs near the threshold: the hardest place to agree.
        threshold, source = float(np.median(sa[iu])), "median torch pair similarity"
    # Nearest neighbour by similarity, excluding the face itself.
    np.fill_diagonal(sa, -np.inf)
    np.fill_diagonal(sb, -np.inf)
    nn_a, nn_b = sa.argmax(1), sb.argmax(1)
    np.fill_diagonal(sa, 1.0)
    np.fill_diagonal(sb, 1.0)
    decisions = (sa[iu] >= threshold) == (sb[iu] >= threshold)
    order = np.argsort(cos)
    names = labels or [f"#{i}" for i in range(n)]
    return ParityMetrics(
        faces=n,
        pairs=len(dev),
        min_cosine=float(cos.min()),
        mean_cosine=float(cos.mean()),
        max_abs_diff=float(np.abs(a - b).max()),
        max_similarity_deviation=float(dev.max()),
        mean_similarity_deviation=float(dev.mean()),
        nn_agreement=float(np.mean(nn_a == nn_b)),
        decision_agreement=float(decisions.mean()),
        threshold=float(threshold),
        threshold_source=source,
        worst=[(names[i], float(cos[i])) for i in order[:5]],
    )


def evaluate_tolerances(metrics: ParityMetrics, tolerances: dict[str, float]) -> list[str]:
    m = asdict(metrics)
    failures = []
    for name, tol in tolerances.items():
        direction, meaning = METRICS[name]
        if not _within(m[name], tol, direction):
            op = ">=" if direction == "min" else "<="
            failures.append(f"{name} {_fmt(m[name])} (needs {op} {_fmt(tol)}: {meaning})")
    return failures


def blame_collapsed_reference(reference: np.ndarray, failures: list[str], warnings: list[str]) -> list[str]:
    """``failures``, led by the real cause when the PyTorch embeddings themselves collapsed: then faces are nearly
    equidistant, any rounding reorders neighbours and decisions, and the export is not to blame."""
    a = np.asarray(reference, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    collapsed = embedding_collapse((a @ a.T)[np.triu_indices(len(a), 1)])
    if collapsed is None:
        return failures
    degenerate = f"the float (PyTorch) model is degenerate, not the export: {collapsed}"
    log.warning("%s", degenerate)
    if not failures:
        warnings.append(degenerate)
        return failures
    return [degenerate + "; so these differences say nothing about the export"] + failures


def guess_precision(model_path: str | Path) -> str:
    """The artifact's precision: its contract (manifest entry or embedded), else int8 if its conv/FC weights are
    integer."""
    contract = contract_for(model_path)
    if contract is not None and contract.precision in PRECISIONS:
        return contract.precision

    info = inspect_tflite(model_path)
    if any(t in ("int8", "uint8") for t in info.weight_types):
        return "int8"
    return "float16" if _has_float16_weights(model_path) else "float32"


def _has_float16_weights(model_path: str | Path) -> bool:
    """float16 files feed float32 ops through DEQUANTIZE from float16 constants (so weight_types says float32)."""
    interpreter = load_interpreter(model_path, num_threads=1)
    return any(np.dtype(t["dtype"]) == np.float16 for t in interpreter.get_tensor_details())


def parity_check(
    model: str | Path,
    checkpoint: str | Path,
    images: str | Path | None = None,
    limit: int = DEFAULT_LIMIT,
    tolerances: dict[str, float] | None = None,
    precision: str | None = None,
    threshold: float | None = None,
    num_threads: int = DEFAULT_THREADS,
    seed: int = 0,
    progress: bool = True,
    pick: str = DEFAULT_PICK,
) -> ParityReport:
    """Run the checkpoint (PyTorch) and ``model`` (.tflite, LiteRT) on the same faces and compare.

    ``images``: a face folder or faces CSV (``pick``: the face-picking rule for photos); None uses the held-out
    faces the export recorded (:mod:`toolkit.held_out`), else the stored reference inputs for this model's spec.
    ``tolerances`` override the per-precision defaults metric by metric.
    """
    model = Path(model)
    checkpoint = Path(checkpoint)
    if not model.is_file():
        raise InputError(f"model file not found: {model}")
    if model.suffix.lower() != ".tflite":
        raise InputError(f"{model} is not a .tflite file", hint="parity-check compares an exported .tflite "
                                                                "against --checkpoint")
    if limit is not None and limit < MIN_FACES:
        raise InputError(f"--limit must be at least {MIN_FACES}, got {limit}")
    if precision is not None and precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}", hint=f"choose one of {', '.join(PRECISIONS)}")

    inspect_tflite(model)  # bounds-checked parse first: a truncated file gets a clear error, not a crash
    loaded = load_checkpoint(checkpoint)
    warnings: list[str] = []

    contract = contract_for(model)
    spec = loaded.model.spec
    if contract is not None:
        # Both sides run with the artifact's spec; a checkpoint whose contract differs is another model. Only the
        # input size may differ (an export at another --input-size of the same fully convolutional backbone).
        exported = contract.spec
        mine, theirs = spec.to_dict(), exported.to_dict()
        differing = [f"{k} {theirs[k]!r} vs {mine[k]!r}" for k in theirs if k != "input_size" and theirs[k] != mine[k]]
        if differing:
            raise InputError(f"{model.name}'s spec differs from {checkpoint.name}'s (artifact vs checkpoint: "
                             + "; ".join(differing) + ")",
                             hint="pair the .tflite with the checkpoint it was exported from")
        spec = exported
        source_sha = contract.source_checkpoint.get("sha256")
        if source_sha and source_sha != loaded.sha256:
            warnings.append(f"{model.name} was exported from a different checkpoint (sha256 {source_sha[:12]}, "
                            f"given {loaded.sha256[:12]})")
        if contract.source == "embedded":
            warnings.append(f"no export manifest beside {model.name}; using the contract embedded in the file")
    else:
        warnings.append(f"no export manifest beside {model.name} and no contract in it; assuming the checkpoint's "
                        "spec")
    loaded.model.spec = spec
    precision = precision or guess_precision(model)

    faces, labels, faces_source = _parity_faces(model, contract, spec, images, limit, seed, progress, pick)

    threshold_source = "given" if threshold is not None else None
    if threshold is None:
        threshold, note = _threshold_from_eval_report(checkpoint)
        if threshold is not None:
            threshold_source = note
            log.info("using threshold %.4f: %s", threshold, note)

    torch_embedder = TorchEmbedder.from_checkpoint(loaded)
    tflite_embedder = TFLiteEmbedder(model, spec, num_threads=num_threads)
    reference = torch_embedder.embed(faces)
    candidate = tflite_embedder.embed(faces)
    metrics = compare_embeddings(reference, candidate, labels, threshold)
    if threshold_source:
        metrics.threshold_source = threshold_source

    effective = dict(DEFAULT_TOLERANCES[precision])
    effective.update(tolerances or {})
    failures = blame_collapsed_reference(reference, evaluate_tolerances(metrics, effective), warnings)
    report = ParityReport(
        model=str(model), checkpoint=str(checkpoint), precision=precision, faces_source=faces_source,
        metrics=metrics, tolerances=effective, failures=failures, warnings=warnings,
        model_sha256=tflite_embedder.model_sha256, checkpoint_sha256=loaded.sha256,
    )
    log.info("parity %s: %s", "passed" if report.passed else "FAILED", model)
    return report


def _parity_faces(model: Path, contract: Any, spec: Any, images: str | Path | None, limit: int | None, seed: int,
                  progress: bool, pick: str) -> tuple[np.ndarray, list[str], str]:
    """(faces, labels, where they came from): ``images``, else the export's held-out sample, else a reference set."""
    if images is not None:
        crops = load_face_crops(images, spec, limit=limit, seed=seed, progress=progress, min_faces=MIN_FACES,
                                pick=pick)
        return crops.images, crops.paths, str(images)

    sample = load_sample(model, contract.manifest if contract is not None and contract.source == "manifest" else None)
    if sample is not None:
        log.info("using %s", sample.description)
        if sample.images.shape[1:3] != (spec.input_size, spec.input_size):
            raise InputError(f"the recorded parity faces are {sample.images.shape[1]} px, the model takes "
                             f"{spec.input_size}", hint="pass --faces DIR_OR_CSV")
        if limit and len(sample.images) < limit:  # say so: the report's face count is not the one asked for
            log.warning("comparing the %d faces the export held out, not %d: pass --faces DIR_OR_CSV for more (or "
                        "export with --parity-faces %d)", len(sample.images), limit, limit)
        return sample.images[:limit], sample.labels[:limit], sample.description

    ref = find_reference_for(spec)
    if ref is None:
        raise InputError(f"no --faces given, no held-out faces recorded by the export of {model.name}, and no "
                         f"stored reference inputs for {spec.backbone} at {spec.input_size}x{spec.input_size}",
                         hint="pass --faces DIR_OR_CSV with real face photos (an int8 export records its own)")
    faces = ref.inputs[:limit] if limit else ref.inputs
    return faces, [f"{ref.name}#{i}" for i in range(len(faces))], f"reference set {ref.name}"


def _threshold_from_eval_report(checkpoint: Path) -> tuple[float | None, str]:
    """The threshold the app uses: the one ``ftk evaluate`` calibrated for this checkpoint at the default FAR."""
    choice = calibrated_threshold(checkpoint)
    return choice.value, choice.note if choice.value is not None else ""


# --------------------------------------------------------------------------------------------------------------------
# per-layer int8 error (ftk parity-check --layers)
# --------------------------------------------------------------------------------------------------------------------
@dataclass
class LayerError:
    layer: str  # backbone module name, as --keep-float takes it
    op: str  # the TFLite op that produces it
    sqnr_db: float  # 10 log10(sum ref^2 / sum (ref - tflite)^2) over all faces
    cosine: float  # mean per-face cosine of the flattened layer output
    shape: list[int]


def _module_path(tensor_name: str) -> str | None:
    return module_path_of_tensor(tensor_name)


def _reference_module(root: Any, path: str) -> tuple[str, Any] | None:
    """The float module whose output the int8 tensor stands for: a conv's BatchNorm sibling when it has one
    (conv + BN is one op after folding), else the module itself."""
    from torch import nn

    try:
        module = root.get_submodule(path)
    except AttributeError:
        return None
    if isinstance(module, (nn.Conv2d, nn.Linear)) and "." in path:
        parent_path, name = path.rsplit(".", 1)
        parent = root.get_submodule(parent_path)
        children = list(parent.named_children())
        keys = [k for k, _ in children]
        i = keys.index(name)
        if i + 1 < len(children) and isinstance(children[i + 1][1], (nn.BatchNorm1d, nn.BatchNorm2d)):
            return f"{parent_path}.{keys[i + 1]}", children[i + 1][1]
    return path, module


def _layer_label(root: Any, path: str) -> str:
    """The name to give --keep-float: an activation fused into a conv is named by that conv (its nearest
    preceding conv sibling)."""
    from torch import nn

    module = root.get_submodule(path)
    if isinstance(module, (nn.ReLU, nn.ReLU6, nn.Hardtanh)) and path.count(".") > 1:
        parent_path, name = path.rsplit(".", 1)
        children = list(root.get_submodule(parent_path).named_children())
        keys = [k for k, _ in children]
        if name in keys:
            for key, child in reversed(children[: keys.index(name)]):
                if isinstance(child, nn.Conv2d):
                    path = f"{parent_path}.{key}"
                    break
    return path[len("backbone."):]


def layer_errors(model: str | Path, checkpoint: str | Path, images: str | Path | None = None, limit: int = 32,
                 seed: int = 0, progress: bool = False, pick: str = DEFAULT_PICK) -> list[LayerError]:
    """SQNR of every quantised layer output of an int8 .tflite against the float PyTorch graph, worst first.

    The .tflite runs without delegates and with all intermediate tensors kept; each int8 tensor litert-torch
    named after a backbone module is dequantised and compared with that module's output (forward hooks, NHWC)
    in the float model the export folded (same BatchNorm/scale folds). Layers the names do not map are left out.
    """
    import torch
    with native_logs.quiet_import():
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from toolkit.models.face_model import embedding_model_from

    model = Path(model)
    loaded = load_checkpoint(checkpoint)
    spec = loaded.model.spec
    contract = contract_for(model)
    if contract is not None:
        spec = spec.replace(input_size=contract.spec.input_size)
    loaded.model.spec = spec
    faces = _parity_faces(model, contract, spec, images, limit, seed, progress, pick)[0]
    module = embedding_model_from(loaded.model)
    folded, _ = fold_for_export(module, faces)

    interpreter = Interpreter(model_path=str(model), num_threads=1, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    with native_logs.native_stderr_hidden("LiteRT"):
        interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    # (op, tensor, module path, k-th output of that module)
    targets: list[tuple[str, dict, str, int]] = []
    seen: dict[str, int] = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE", "RESHAPE", "PAD"):
            continue
        for index in op["outputs"]:
            t = tensors.get(index)
            if t is None or np.dtype(t["dtype"]) != np.int8:
                continue
            path = _module_path(t["name"])
            if not path or not path.startswith("backbone."):
                continue
            ref = _reference_module(folded, path)
            if ref is None:
                continue
            k = seen.get(ref[0], 0)
            seen[ref[0]] = k + 1
            targets.append((op["op_name"], t, ref[0], k, _layer_label(folded, path)))
    if not targets:
        raise InputError(f"{model.name} has no int8 layer outputs named after backbone modules",
                         hint="--layers needs an int8 export made by ftk export")

    captured: dict[str, list] = {}
    hooks = []
    for name in {p for _, _, p, _, _ in targets}:
        mod = folded.get_submodule(name)
        hooks.append(mod.register_forward_hook(
            lambda _m, _i, out, name=name: captured.setdefault(name, []).append(out.detach().clone())))
    signal = np.zeros(len(targets))
    noise = np.zeros(len(targets))
    cosines = np.zeros(len(targets))
    inp = interpreter.get_input_details()[0]
    try:
        for face in faces:
            captured.clear()
            x = face[None].astype(np.float32)
            with torch.no_grad():
                folded(torch.from_numpy(x))
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            for j, (_, t, name, k, _) in enumerate(targets):
                outs = captured.get(name, [])
                if k >= len(outs):
                    continue
                ref = outs[k].numpy()
                if ref.ndim == 4:
                    ref = ref.transpose(0, 2, 3, 1)
                q = interpreter.get_tensor(t["index"]).astype(np.float64)
                scale, zero = t["quantization"]
                got = (q - zero) * scale
                if got.size != ref.size:
                    continue
                ref = ref.reshape(-1).astype(np.float64)
                got = got.reshape(-1)
                signal[j] += float(ref @ ref)
                noise[j] += float((ref - got) @ (ref - got))
                denom = np.linalg.norm(ref) * np.linalg.norm(got)
                cosines[j] += float(ref @ got / denom) if denom > 0 else 0.0
    finally:
        for h in hooks:
            h.remove()
    out = []
    for j, (op_name, t, name, k, label) in enumerate(targets):
        if signal[j] == 0:
            continue
        sqnr = float(10 * np.log10(signal[j] / noise[j])) if noise[j] > 0 else float("inf")
        label = label + (f"#{k + 1}" if seen[name] > 1 else "")
        out.append(LayerError(label, op_name, sqnr, cosines[j] / len(faces), [int(v) for v in t["shape"]]))
    return sorted(out, key=lambda e: e.sqnr_db)


def layer_table(errors: list[LayerError], top: int = 15) -> str:
    lines = [f"int8 error per layer (SQNR of the dequantised int8 output vs the float graph; lowest first, "
             f"{min(top, len(errors))} of {len(errors)})",
             f"{'layer':<28} {'op':<18} {'SQNR dB':>8} {'cosine':>9}  shape"]
    for e in errors[:top]:
        lines.append(f"{e.layer:<28} {e.op:<18} {e.sqnr_db:8.2f} {e.cosine:9.5f}  {'x'.join(map(str, e.shape))}")
    lines.append("keep the worst in float with: ftk export ... --quantize int8 --keep-float LAYER")
    return "\n".join(lines)
