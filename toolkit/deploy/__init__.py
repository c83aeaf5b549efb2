"""ftk deploy: put an exported model into an Android app checkout, safely, and check the app's runtime can run it.

``deploy()`` reads the export manifest and the .tflite, finds the activities by content, computes every change
(asset copy, model file name, inputSize, embeddingDim, threshold, optionally the Gradle runtime), gates on runtime
compatibility, and applies the changes all-or-nothing with a backup for ``revert()``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import InputError, ModelFileError
from toolkit.spec import ModelSpec

log = logging.getLogger(__name__)

VARIANTS = ("int8", "float32", "float16")
# Hybrid (dynamic-range int8) kernels computed wrong results on runtimes up to and including 2.14 (measured).
HYBRID_SAFE_FROM = "2.15.0"
# The last org.tensorflow:tensorflow-lite release line on Maven; later runtimes ship as com.google.ai.edge.litert.
NEWEST_TFLITE_RELEASE = "2.17.0"
# An asset name goes into a Kotlin string literal and a file name: letters, digits, '.', '_', '-' only.
SAFE_ASSET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}\.tflite")
# Cosine thresholds above this are stricter than face-embedding models need (calibrated ones sit around 0.3-0.7).
SUSPICIOUS_THRESHOLD = 0.9
THRESHOLD_GAP_WARNING = 0.1


class CompatibilityError(InputError):
    """The model needs something the app's TFLite runtime does not have."""


@dataclass
class CompatibilityVerdict:
    app_runtime: str
    target_runtime: str  # the runtime the app will have after this deploy (app_runtime, or --bump-runtime)
    model_min_runtime: str | None
    external_buffers: bool
    hybrid_int8: bool
    compatible: bool
    reasons: list[str] = field(default_factory=list)  # why not (empty when compatible)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        head = (f"runtime check: model needs >= {self.model_min_runtime or 'unknown'}, app "
                f"{'will use' if self.target_runtime != self.app_runtime else 'uses'} {self.target_runtime}"
                + (f" (bumped from {self.app_runtime})" if self.target_runtime != self.app_runtime else "")
                + (": compatible" if self.compatible else ": INCOMPATIBLE"))
        lines = [head] + [f"  - {r}" for r in self.reasons] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class DeployResult:
    app_dir: str
    model_path: str
    variant: str
    asset: str  # path of the model inside the app, relative to app_dir
    dry_run: bool
    applied: bool  # False for a dry run or a no-op rerun
    changed_files: list[str]
    diff: str
    previous: dict[str, Any]  # model_file, input_size, embedding_dim, threshold before the deploy
    input_size: int
    embedding_dim: int
    threshold: float | None  # the threshold written (None: left as it was)
    threshold_source: str  # "auto" | "given" | "unchanged"
    compatibility: CompatibilityVerdict
    backup_dir: str | None = None
    runtime_verify: dict[str, Any] | None = None
    # How the app prepares faces: found (in words), patched (True: ftk's generated preprocessor), files added.
    preprocessing: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# model resolution
# ----------------------------------------------------------------------------------------------------------------
def resolve_model(model_or_export_dir: str | Path, variant: str):
    """(the .tflite, its precision, its contract). The contract (input size, value range, normalisation, crop)
    comes from the export manifest that lists the file with a matching sha256, or from the file's own metadata."""
    from toolkit.manifest import MANIFEST_NAME, contract_for, manifest_artifacts

    source = Path(model_or_export_dir)
    if not source.exists():
        raise InputError(f"not found: {source}", hint="pass the export folder (from ftk export) or a .tflite in it")
    model_path = source
    if source.is_dir():
        if variant not in VARIANTS:
            raise InputError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if not (source / MANIFEST_NAME).is_file():
            raise ModelFileError(f"no {MANIFEST_NAME} in {source}: ftk deploy needs the ftk export manifest",
                                 hint="pass the folder ftk export wrote, or one of its .tflite files")
        files = {str(e.get("precision")): name for name, e in manifest_artifacts(source).items()
                 if isinstance(e, dict)}
        if variant not in files:
            available = ", ".join(sorted(files)) or "none"
            raise InputError(f"{source / MANIFEST_NAME} lists no {variant} artifact (available: {available})",
                             hint=f"pass --variant {sorted(files)[0]}" if files else "export the model again")
        model_path = source / files[variant]
        if not model_path.is_file():
            raise ModelFileError(f"the manifest lists {model_path.name} but it is missing from {source}",
                                 hint="export the model again")
    contract = contract_for(model_path)
    if contract is None:
        raise ModelFileError(f"{model_path.name} states no ftk contract: no {MANIFEST_NAME} beside it lists it and the "
                             "file carries none (input size, value range, normalisation, crop)",
                             hint="deploy a file that ftk export wrote, or deploy a foreign model by hand")
    return model_path, contract.precision or variant, contract


def check_model_contract(spec: ModelSpec, manifest: dict[str, Any], info) -> None:
    """The app feeds float32 NHWC [1, N, N, 3] raw 0..255 pixels and reads [1, D]: refuse anything else."""
    problems = []
    if spec.input_layout != "NHWC" or spec.input_dtype != "float32":
        problems.append(f"the spec says {spec.input_dtype} {spec.input_layout} input; the app feeds float32 NHWC")
    if tuple(spec.value_range) != (0.0, 255.0):
        problems.append(f"the model expects input values in {list(spec.value_range)} (normalised outside the "
                        "graph); the app feeds raw 0..255 pixels")
    normalization = str((manifest.get("input") or {}).get("normalization", "in-graph"))
    if not normalization.startswith("in-graph"):
        problems.append(f"normalisation is {normalization!r}, not in-graph; the app does not normalise")
    expected_in = [1, spec.input_size, spec.input_size, 3]
    if info.input_shape != expected_in or info.input_dtype != "float32":
        problems.append(f"the .tflite takes {info.input_dtype} {info.input_shape}, the manifest says float32 "
                        f"{expected_in}")
    if info.output_shape != [1, spec.embedding_dim]:
        problems.append(f"the .tflite outputs {info.output_shape}, the manifest says [1, {spec.embedding_dim}]")
    if info.num_inputs != 1 or info.num_outputs != 1:
        problems.append(f"the .tflite has {info.num_inputs} inputs and {info.num_outputs} outputs; the app uses 1 and 1")
    if problems:
        raise ModelFileError("model and manifest do not match what the app feeds: " + "; ".join(problems),
                             hint="re-export with ftk export (raw 0..255 NHWC input, normalisation in the graph)")


# ----------------------------------------------------------------------------------------------------------------
# compatibility
# ----------------------------------------------------------------------------------------------------------------
def compatibility_verdict(info, app_runtime: str, target_runtime: str, verify_requested: bool) -> CompatibilityVerdict:
    from toolkit.tflite.op_versions import EXTERNAL_BUFFERS_MIN_RUNTIME, version_at_least

    reasons, notes = [], []
    too_new = [op for op in info.ops if op.min_runtime and not version_at_least(target_runtime, op.min_runtime)]
    for op in too_new:
        reasons.append(f"{op.name} version {op.version} needs TFLite runtime >= {op.min_runtime}")
    if info.external_buffers and not version_at_least(target_runtime, EXTERNAL_BUFFERS_MIN_RUNTIME):
        reasons.append(f"weights are stored outside the flatbuffer (buffer offsets), which runtimes before "
                       f"{EXTERNAL_BUFFERS_MIN_RUNTIME} cannot read")
    if info.hybrid_int8 and not version_at_least(target_runtime, HYBRID_SAFE_FROM):
        reasons.append(f"dynamic-range (hybrid) int8 kernels ({', '.join(info.hybrid_ops)}) gave wrong results on "
                       f"runtimes <= 2.14; export full-integer int8 (static PT2E) or float32")
    if info.unknown_ops:
        declared = info.declared_min_runtime
        if declared and not version_at_least(target_runtime, declared):
            reasons.append(f"op versions newer than ftk's table ({', '.join(info.unknown_ops)}); the converter "
                           f"declared a minimum runtime of {declared}")
        elif declared:
            notes.append(f"op versions newer than ftk's table ({', '.join(info.unknown_ops)}); the converter "
                         f"declared minimum runtime {declared}")
        elif not verify_requested:
            reasons.append(f"cannot tell which runtime {', '.join(info.unknown_ops)} needs (not in ftk's table, no "
                           "converter metadata); run with --verify-runtime to test it on the app's runtime")
        else:
            notes.append(f"unknown op versions {', '.join(info.unknown_ops)}: --verify-runtime decides")
    return CompatibilityVerdict(app_runtime=app_runtime, target_runtime=target_runtime,
                                model_min_runtime=info.min_runtime, external_buffers=info.external_buffers,
                                hybrid_int8=info.hybrid_int8, compatible=not reasons, reasons=reasons, notes=notes)


# ----------------------------------------------------------------------------------------------------------------
# threshold
# ----------------------------------------------------------------------------------------------------------------
def resolve_threshold(threshold: float | str | None, model_path: Path, far: float, current: float | None,
                      warnings: list[str], spec: ModelSpec | None = None) -> tuple[float | None, str]:
    """(the threshold to write, "auto" | "given" | "unchanged"); None leaves the app's value, with a warning when
    it is far from the one calibrated for this file. One resolver behind it: toolkit.reports."""
    from toolkit.reports import calibrated_threshold, check_threshold

    if threshold is None:
        calibrated = calibrated_threshold(model_path, far, spec).value
        if current is not None and calibrated is not None and abs(current - calibrated) > THRESHOLD_GAP_WARNING:
            warnings.append(f"the app's threshold {current:g} is far from the {calibrated:.4f} calibrated for this "
                            f"model at FAR {far:g}; pass --threshold auto to use it")
        elif current is not None and calibrated is None and current > SUSPICIOUS_THRESHOLD:
            warnings.append(f"the app's threshold {current:g} (cosine) is far stricter than face-embedding models "
                            f"need and will reject most genuine matches; run ftk evaluate on {model_path.name} "
                            "and deploy with --threshold auto")
        return None, "unchanged"
    if isinstance(threshold, str) and threshold.strip().lower() == "auto":
        choice = calibrated_threshold(model_path, far, spec)
        if choice.value is None and choice.report_path:
            raise InputError(f"--threshold auto: {choice.note}")
        if choice.value is None:
            raise InputError(f"--threshold auto needs the evaluation report of exactly {model_path.name}: "
                             f"{choice.note}", hint=f"run ftk evaluate {model_path} first, or pass --threshold VALUE")
        return choice.value, "auto"
    return check_threshold(threshold), "given"


def _asset_name(spec: ModelSpec, precision: str) -> str:
    backbone = re.sub(r"[^a-z0-9]+", "_", spec.backbone.lower()).strip("_")
    return f"ftk_{backbone}_{precision}.tflite"


def _our_previous_asset(app_dir: Path, asset: Path, current: bytes) -> bool:
    """True when ``asset`` is exactly a file an earlier ftk deploy wrote (its recorded journal says so)."""
    import hashlib

    from toolkit.deploy.transaction import recorded_journals

    digest = hashlib.sha256(current).hexdigest()
    rel = str(asset.relative_to(app_dir))
    return any(isinstance(e, dict) and e.get("path") == rel and e.get("sha256_after") == digest
               for journal in recorded_journals(app_dir) for e in journal.get("files") or [])


# ----------------------------------------------------------------------------------------------------------------
# the app's face preprocessing
# ----------------------------------------------------------------------------------------------------------------
def plan_preprocessing(app, spec: ModelSpec, sources: dict[Path, str], asset_file: str,
                       model_sha256: str) -> tuple[dict[Path, str], dict[str, Any]]:
    """New texts (activities edited, generated preprocessor added) that make the app crop as the model's spec says.

    Refuses (InputError, nothing changed) app code in a shape :mod:`toolkit.deploy.app_code` does not recognise.
    """
    from toolkit.deploy.android import source_files
    from toolkit.deploy.app_code import plan_app_preprocessing
    from toolkit.deploy.kotlin import generate_sources

    activities = {a.path: sources.get(a.path, a.text) for a in app.activities}
    all_sources = {p: sources.get(p) or p.read_text(encoding="utf-8") for p in source_files(app.root)}
    plan = plan_app_preprocessing(app.root, spec, activities, all_sources, app.threshold.path)
    if not plan.recognised:
        raise InputError("the app's face preprocessing is not in a shape ftk deploy recognises: "
                         + "; ".join(plan.problems) + "; nothing was changed",
                         hint="see docs/deploy.md for the recognised shape, or pass --keep-app-preprocessing to "
                              "deploy only the model file and constants (the app then keeps its own crop)")
    generated = generate_sources(spec, plan.package, asset_file, model_sha256)
    texts = dict(plan.texts)
    texts.update({plan.source_dir / name: text for name, text in generated.items()})
    info = {"patched": True, "found": plan.found, "landmarks_before": plan.landmarks, "crop": spec.crop,
            "added_files": [str((plan.source_dir / n).relative_to(app.root)) for n in sorted(generated)]}
    return texts, info


def app_crop_cost(model_path: Path, spec: ModelSpec) -> str:
    """What keeping the app's own crop costs, from the evaluate reports of this exact file when they exist."""
    from toolkit.app_sim import APP_BEFORE, app_eval_dir
    from toolkit.reports import REPORT_NAME, find_eval_report

    ours = find_eval_report(model_path)
    app = find_eval_report(model_path, app_eval_dir(model_path, APP_BEFORE) / REPORT_NAME)
    head = f"the app keeps its own face crop (box, no margin), not the model's ({spec.crop})"
    if ours and app and ours.get("verification") and app.get("verification"):
        a, b = ours["verification"], app["verification"]
        return (f"{head}: measured on {Path(a['pairs_file']).name}, accuracy {a['accuracy_mean']:.2%} with the "
                f"model's crop vs {b['accuracy_mean']:.2%} with the app's (simulated), "
                f"{100 * (a['accuracy_mean'] - b['accuracy_mean']):.1f} points lost")
    return (f"{head}; to measure what that costs run: ftk evaluate {model_path} --pairs PAIRS "
            "--simulate-app before")


# ----------------------------------------------------------------------------------------------------------------
# deploy / revert
# ----------------------------------------------------------------------------------------------------------------
def deploy(model_or_export_dir: str | Path, app_dir: str | Path, variant: str = "int8",
           threshold: float | str | None = None, far: float = 1e-3, dry_run: bool = False,
           bump_runtime: str | None = None, verify_runtime: bool = False,
           asset_name: str | None = None, keep_app_preprocessing: bool = False) -> DeployResult:
    """Patch ``app_dir`` to run the exported model. Nothing in the app changes unless every check passes.

    By default the app's own face crop is replaced with the preprocessor generated from the model's spec
    (:mod:`toolkit.deploy.kotlin`); ``keep_app_preprocessing`` deploys the model file and constants only.
    """
    from toolkit.deploy.android import find_app, patched_sources
    from toolkit.deploy.gradle import bumped_texts, find_runtime
    from toolkit.deploy.transaction import apply_changes, binary_change, git_dirty_files, text_change, unified_diff
    from toolkit.tflite import inspect_tflite
    from toolkit.tflite.op_versions import parse_version

    app_dir = Path(app_dir).resolve()
    model_path, precision, contract = resolve_model(model_or_export_dir, variant)
    spec = contract.spec
    info = inspect_tflite(model_path)
    check_model_contract(spec, contract.manifest or contract.embedded or {}, info)

    app = find_app(app_dir)
    runtime = find_runtime(app_dir)
    target_runtime = bump_runtime or runtime.version
    if bump_runtime:
        bumped_texts(runtime, bump_runtime)  # validates the version text before anything else
        if parse_version(bump_runtime) < parse_version(runtime.version):
            raise InputError(f"--bump-runtime {bump_runtime} is older than the app's {runtime.version}",
                             hint="ftk deploy only moves the runtime forward")
        if parse_version(bump_runtime) > parse_version(NEWEST_TFLITE_RELEASE):
            raise InputError(f"--bump-runtime {bump_runtime} is newer than the newest org.tensorflow:tensorflow-lite "
                             f"release ftk knows ({NEWEST_TFLITE_RELEASE})",
                             hint="pass a released version, e.g. 2.16.1; later runtimes are LiteRT "
                                  "(com.google.ai.edge.litert), a dependency change ftk does not make")
    verdict = compatibility_verdict(info, runtime.version, target_runtime, verify_runtime)

    warnings: list[str] = list(info.warnings)
    current_threshold = float(app.threshold.value) if app.threshold else None
    new_threshold, threshold_source = resolve_threshold(threshold, model_path, far, current_threshold, warnings,
                                                        spec)

    asset_file = asset_name or _asset_name(spec, precision)
    if not SAFE_ASSET_NAME.fullmatch(asset_file):
        raise InputError(f"--asset-name {asset_file!r} is not a safe file name: it goes into assets/ and into a "
                         "Kotlin string literal", hint="use letters, digits, '.', '_' and '-', ending in .tflite, "
                                                       "e.g. ftk_face.tflite")
    asset_path = app.assets_dir / asset_file
    model_bytes = model_path.read_bytes()
    if asset_path.exists():
        existing = asset_path.read_bytes()
        if existing != model_bytes and not _our_previous_asset(app_dir, asset_path, existing):
            raise InputError(f"{asset_path.relative_to(app_dir)} already exists and is not a model ftk deploy put "
                             "there", hint="pass --asset-name with another name, or move that file away")

    previous = {"model_files": app.current_models,
                "input_size": sorted({a.input_size for a in app.activities}),
                "embedding_dim": sorted({a.embedding_dim for a in app.activities}),
                "threshold": current_threshold, "runtime": runtime.version}

    changes = [binary_change(asset_path, model_bytes)]
    if bump_runtime and bump_runtime != runtime.version:
        changes += [text_change(path, text) for path, text in sorted(bumped_texts(runtime, bump_runtime).items())]
    sources = patched_sources(app, asset_file, spec.input_size, spec.embedding_dim, new_threshold)
    if keep_app_preprocessing:
        preprocessing = {"patched": False, "found": [], "added_files": []}
        warnings.append(app_crop_cost(model_path, spec))
    else:
        generated, preprocessing = plan_preprocessing(app, spec, sources, asset_file, info.sha256)
        sources.update(generated)
    changes += [text_change(path, text) for path, text in sorted(sources.items())]
    changes = [c for c in changes if c.changed]
    diff = unified_diff(changes, app_dir)

    old_dims = set(previous["embedding_dim"])
    if changes and (old_dims != {spec.embedding_dim} or set(app.current_models) != {asset_file}):
        prefs = sorted({m for a in app.activities for m in re.findall(r'getSharedPreferences\(\s*"([^"]+)"', a.text)})
        where = (f"SharedPreferences {', '.join(repr(p) for p in prefs)}" if prefs else "SharedPreferences")
        skipped = (" (the patched matching skips them: records now carry the model's id)"
                   if preprocessing.get("patched") else "")
        warnings.append(f"faces registered with the previous model ({', '.join(app.current_models)}, "
                        f"{'/'.join(str(d) for d in sorted(old_dims))}-d) are stored in {where} and are not "
                        f"comparable with {asset_file} ({spec.embedding_dim}-d){skipped}: re-enrol every face")
    for old_model in app.current_models:
        old_path = app.assets_dir / old_model
        if old_model != asset_file and old_path.is_file() and \
                _our_previous_asset(app_dir, old_path, old_path.read_bytes()):
            warnings.append(f"{old_path.relative_to(app_dir)} (written by an earlier ftk deploy) is no longer loaded "
                            "but stays in assets/: delete it to keep the APK small, or --revert that deploy first")
    dirty = git_dirty_files(app_dir, [c.path for c in changes if c.old is not None])
    if dirty:
        warnings.append("uncommitted git changes in files ftk deploy patches: " + ", ".join(dirty)
                        + " (ftk deploy --revert restores them as they are now)")

    result = DeployResult(
        app_dir=str(app_dir), model_path=str(model_path), variant=precision,
        asset=str(asset_path.relative_to(app_dir)), dry_run=dry_run, applied=False,
        changed_files=[str(c.path.relative_to(app_dir)) for c in changes], diff=diff, previous=previous,
        input_size=spec.input_size, embedding_dim=spec.embedding_dim, threshold=new_threshold,
        threshold_source=threshold_source, compatibility=verdict, preprocessing=preprocessing,
        model_info={"ops": [f"{op.name} v{op.version}" for op in info.ops], "min_runtime": info.min_runtime,
                    "declared_min_runtime": info.declared_min_runtime, "external_buffers": info.external_buffers,
                    "hybrid_int8": info.hybrid_int8, "sha256": info.sha256, "size_bytes": info.size_bytes},
        warnings=warnings)
    if dry_run:
        return result
    if not verdict.compatible:
        raise CompatibilityError(
            f"{model_path.name} cannot run on the app's TFLite {target_runtime}: " + "; ".join(verdict.reasons)
            + "; nothing was changed",
            hint="pass --bump-runtime VERSION to also update the app's Gradle dependency, or export a compatible "
                 "variant")
    if verify_runtime:
        from toolkit.deploy.runtime_verify import verify_runtime as run_verify

        check = run_verify(model_path, spec, target_runtime)
        result.runtime_verify = asdict(check)
        if not check.passed:
            from toolkit.errors import CheckFailed

            raise CheckFailed(f"tensorflow {check.tensorflow_version} and ai-edge-litert disagree on "
                              f"{model_path.name}: min cosine {check.cosine_min:.6f} < {check.min_cosine_required}; "
                              "nothing was changed", hint="do not ship this model on that runtime")
    if not changes:
        log.info("the app already runs %s with these settings: nothing to do", asset_file)
        return result
    meta = {"model": str(model_path), "model_sha256": info.sha256, "variant": precision, "asset": result.asset,
            "contract_source": contract.source,
            "previous": previous, "threshold": new_threshold, "runtime": target_runtime}
    backup = apply_changes(app_dir, changes, meta)
    result.applied = True
    result.backup_dir = str(backup) if backup else None
    return result


def revert(app_dir: str | Path, force: bool = False, dry_run: bool = False):
    """Undo the last ``deploy`` of ``app_dir`` from its backup set (refuses if those files were edited since).
    ``dry_run`` checks everything and says what would be restored and removed, writing nothing."""
    from toolkit.deploy.transaction import revert_changes

    app_dir = Path(app_dir).resolve()
    if not app_dir.is_dir():
        raise InputError(f"app folder not found: {app_dir}")
    return revert_changes(app_dir, force=force, dry_run=dry_run)


__all__ = ["CompatibilityError", "CompatibilityVerdict", "DeployResult", "deploy", "revert", "resolve_model"]
