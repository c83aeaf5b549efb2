"""ftk deploy: put an exported model into an Android app checkout, safely, and check the app's runtime can run it.

``deploy()`` is ``plan_deploy()`` then ``apply_deploy()``. The plan reads the export manifest and the .tflite, finds
the activities by content and computes every change (asset copy, model file name, inputSize, embeddingDim,
threshold, optionally the Gradle runtime) with nothing written; a dry run reports it. Applying gates on runtime
compatibility and writes the changes all-or-nothing with a backup for ``revert()``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit.constants import DEFAULT_FAR
from toolkit.deploy.android import find_app
from toolkit.deploy.app_patch import GENERATED_MARK, AppCodeError, app_code_mode, app_sources, kit_steps
from toolkit.deploy.gradle import bumped_texts, find_runtime
from toolkit.deploy.runtime_verify import verify_runtime
from toolkit.deploy.threshold import deploy_problems, gate_shipping, resolve_threshold
from toolkit.deploy.transaction import (FileChange, app_lock, apply_changes, binary_change, git_dirty_files,
                                        recorded_journals, recover_unfinished, revert_changes, text_change,
                                        unified_diff)
from toolkit.errors import CheckFailed, InputError, ModelFileError
from toolkit.manifest import MANIFEST_NAME, contract_for, manifest_artifacts
from toolkit.spec import ModelSpec
from toolkit.tflite import inspect_tflite
from toolkit.tflite.op_versions import EXTERNAL_BUFFERS_MIN_RUNTIME, parse_version, version_at_least

log = logging.getLogger(__name__)

VARIANTS = ("int8", "float32", "float16")
# Hybrid (dynamic-range int8) kernels computed wrong results on runtimes up to and including 2.14 (measured).
HYBRID_SAFE_FROM = "2.15.0"
# The last org.tensorflow:tensorflow-lite release line on Maven; later runtimes ship as com.google.ai.edge.litert.
NEWEST_TFLITE_RELEASE = "2.17.0"
# An asset name goes into a Kotlin string literal and a file name: letters, digits, '.', '_', '-' only.
SAFE_ASSET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}\.tflite")


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
    recovery: str | None = None  # an interrupted earlier deploy or revert this one finished first (what it did)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# model resolution
# ----------------------------------------------------------------------------------------------------------------
def resolve_model(model_or_export_dir: str | Path, variant: str):
    """(the .tflite, its precision, its contract). The contract (input size, value range, normalisation, crop)
    comes from the export manifest that lists the file with a matching sha256, or from the file's own metadata."""
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


def _asset_name(spec: ModelSpec, precision: str) -> str:
    backbone = re.sub(r"[^a-z0-9]+", "_", spec.backbone.lower()).strip("_")
    return f"ftk_{backbone}_{precision}.tflite"


def _our_previous_asset(app_dir: Path, asset: Path, current: bytes) -> bool:
    """True when ``asset`` is exactly a file an earlier ftk deploy wrote (its recorded journal says so)."""
    import hashlib


    digest = hashlib.sha256(current).hexdigest()
    rel = str(asset.relative_to(app_dir))
    return any(isinstance(e, dict) and e.get("path") == rel and e.get("sha256_after") == digest
               for journal in recorded_journals(app_dir) for e in journal.get("files") or [])


# ----------------------------------------------------------------------------------------------------------------
# deploy = plan, then apply
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class DeployPlan:
    """Everything one deploy would do, computed with nothing written: a dry run reports it, apply_deploy runs it."""
    result: DeployResult  # what the dry run reports: diff, changed files, runtime verdict, preprocessing, warnings
    changes: list[Any]  # the transaction's FileChanges that really change a file (the asset copy first)
    model_path: Path
    spec: ModelSpec
    verify_runtime: bool
    journal: dict[str, Any]  # recorded beside the backup: revert and later deploys read it


def deploy(model_or_export_dir: str | Path, app_dir: str | Path, variant: str = "int8",
           threshold: float | str | None = None, far: float = DEFAULT_FAR, dry_run: bool = False,
           bump_runtime: str | None = None, verify_runtime: bool = False,
           asset_name: str | None = None, keep_app_preprocessing: bool = False,
           app_code: str | None = None, force: bool = False, parity_passed: bool | None = None) -> DeployResult:
    """Patch ``app_dir`` to run the exported model. Nothing in the app changes unless every check passes.

    ``app_code`` says how much deploy does to app code: "patch" (default: the app crops, matches and stores records
    as the model's contract says, through the preprocessor generated from its spec), "kit" (adds the model, the
    generated Kotlin and FtkModelConfig; changes no existing file), "none" (the model file and the constants only;
    ``keep_app_preprocessing`` is its old name).
    ``dry_run`` returns the plan's report and writes nothing.
    """
    app_dir = Path(app_dir).resolve()
    with app_lock(app_dir, required=not dry_run):  # planned and applied against one state of the app
        recovery = recover_unfinished(app_dir, dry_run=dry_run)  # a killed deploy or revert, finished first
        plan = plan_deploy(model_or_export_dir, app_dir, variant=variant, threshold=threshold, far=far,
                           bump_runtime=bump_runtime, verify_runtime=verify_runtime, asset_name=asset_name,
                           keep_app_preprocessing=keep_app_preprocessing, app_code=app_code, force=force,
                           parity_passed=parity_passed)
        result = plan.result if dry_run else apply_deploy(plan)
    if recovery is not None:
        result.recovery = recovery.message
        result.warnings.insert(0, recovery.message)
    return result


def plan_deploy(model_or_export_dir: str | Path, app_dir: str | Path, variant: str = "int8",
                threshold: float | str | None = None, far: float = DEFAULT_FAR, bump_runtime: str | None = None,
                verify_runtime: bool = False, asset_name: str | None = None,
                keep_app_preprocessing: bool = False, app_code: str | None = None, force: bool = False,
                parity_passed: bool | None = None) -> DeployPlan:
    """Check the model and the app and compute every change; reads only (InputError etc. on anything refused)."""
    app_dir = Path(app_dir).resolve()
    model_path, precision, contract = resolve_model(model_or_export_dir, variant)
    spec = contract.spec
    info = inspect_tflite(model_path)
    check_model_contract(spec, contract.manifest or contract.embedded or {}, info)

    app, runtime = find_app(app_dir), find_runtime(app_dir)
    target_runtime = _target_runtime(runtime, bump_runtime)
    verdict = compatibility_verdict(info, runtime.version, target_runtime, verify_runtime)

    warnings: list[str] = list(info.warnings)
    mode = app_code_mode(app_code, keep_app_preprocessing)
    current_threshold = float(app.threshold.value.rstrip("fF")) if app.threshold else None
    new_threshold, threshold_source = resolve_threshold(threshold, model_path, far, current_threshold, warnings,
                                                        spec)
    gate_shipping(deploy_problems(new_threshold, threshold_source, model_path, far, spec, parity_passed), force,
                   warnings)
    asset_file = asset_name or _asset_name(spec, precision)
    asset_path, model_bytes = _checked_asset(app, app_dir, asset_file, model_path)
    previous = _previous_settings(app, runtime.version, current_threshold)
    sources, preprocessing = app_sources(app, spec, mode, asset_file, new_threshold, model_path, info.sha256,
                                          warnings)
    changes = _file_changes(asset_path, model_bytes, runtime, bump_runtime, sources)
    warnings += _change_warnings(app, app_dir, spec, asset_file, changes, preprocessing)

    result = DeployResult(
        app_dir=str(app_dir), model_path=str(model_path), variant=precision,
        asset=str(asset_path.relative_to(app_dir)), dry_run=True, applied=False,
        changed_files=[str(c.path.relative_to(app_dir)) for c in changes], diff=unified_diff(changes, app_dir),
        previous=previous, input_size=spec.input_size, embedding_dim=spec.embedding_dim, threshold=new_threshold,
        threshold_source=threshold_source, compatibility=verdict, preprocessing=preprocessing,
        model_info=_model_info(info), warnings=warnings)
    journal = {"model": str(model_path), "model_sha256": info.sha256, "variant": precision, "asset": result.asset,
               "contract_source": contract.source,
               "previous": previous, "threshold": new_threshold, "runtime": target_runtime}
    return DeployPlan(result=result, changes=changes, model_path=model_path, spec=spec,
                      verify_runtime=verify_runtime, journal=journal)


def apply_deploy(plan: DeployPlan) -> DeployResult:
    """Run ``plan`` through the all-or-nothing transaction, once the runtime gate (and --verify-runtime) pass."""
    result = replace(plan.result, dry_run=False)
    verdict = result.compatibility
    if not verdict.compatible:
        raise CompatibilityError(
            f"{plan.model_path.name} cannot run on the app's TFLite {verdict.target_runtime}: "
            + "; ".join(verdict.reasons) + "; nothing was changed",
            hint="pass --bump-runtime VERSION to also update the app's Gradle dependency, or export a compatible "
                 "variant")
    if plan.verify_runtime:
        result.runtime_verify = _verified_runtime(plan)
    if not plan.changes:
        log.info("the app already runs %s with these settings: nothing to do", Path(result.asset).name)
        return result
    backup = apply_changes(Path(result.app_dir), plan.changes, plan.journal)
    result.applied = True
    result.backup_dir = str(backup) if backup else None
    return result


def _target_runtime(runtime, bump_runtime: str | None) -> str:
    """The runtime the app will have: its own, or ``bump_runtime`` (forward only, a released version)."""
    if not bump_runtime:
        return runtime.version
    bumped_texts(runtime, bump_runtime)  # validates the version text before anything else
    if parse_version(bump_runtime) < parse_version(runtime.version):
        raise InputError(f"--bump-runtime {bump_runtime} is older than the app's {runtime.version}",
                         hint="ftk deploy only moves the runtime forward")
    if parse_version(bump_runtime) > parse_version(NEWEST_TFLITE_RELEASE):
        raise InputError(f"--bump-runtime {bump_runtime} is newer than the newest org.tensorflow:tensorflow-lite "
                         f"release ftk knows ({NEWEST_TFLITE_RELEASE})",
                         hint="pass a released version, e.g. 2.16.1; later runtimes are LiteRT "
                              "(com.google.ai.edge.litert), a dependency change ftk does not make")
    return bump_runtime


def _checked_asset(app, app_dir: Path, asset_file: str, model_path: Path) -> tuple[Path, bytes]:
    """(where the model goes in assets/, its bytes); refuses an unsafe name or clobbering a file ftk did not put."""
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
    return asset_path, model_bytes


def _previous_settings(app, runtime_version: str, current_threshold: float | None) -> dict[str, Any]:
    return {"model_files": app.current_models,
            "input_size": sorted({int(lit.value) for lit in app.sizes}),
            "embedding_dim": sorted({int(lit.value) for lit in app.dims}),
            "threshold": current_threshold, "runtime": runtime_version}


def _file_changes(asset_path: Path, model_bytes: bytes, runtime, bump_runtime: str | None,
                  sources: dict[Path, str]) -> list[Any]:
    """The changes that really change a file, in the order the diff shows them: asset, Gradle, sources."""
    changes = [binary_change(asset_path, model_bytes)]
    if bump_runtime and bump_runtime != runtime.version:
        changes += [text_change(path, text) for path, text in sorted(bumped_texts(runtime, bump_runtime).items())]
    changes += [FileChange(path, data, path.read_bytes() if path.exists() else None)
                for path, data in sorted(sources.items())]
    return [c for c in changes if c.changed]


def _change_warnings(app, app_dir: Path, spec: ModelSpec, asset_file: str, changes: list[Any],
                     preprocessing: dict[str, Any]) -> list[str]:
    """What the change leaves for the user: faces to re-enrol, a stale asset, uncommitted edits it backs up."""
    warnings = []
    old_dims = {int(lit.value) for lit in app.dims}
    if changes and (old_dims != {spec.embedding_dim} or set(app.current_models) != {asset_file}):
        warnings.append(_reenrol_warning(app, spec, asset_file, old_dims, bool(preprocessing.get("patched"))))
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
    return warnings


def _reenrol_warning(app, spec: ModelSpec, asset_file: str, old_dims: set[int], patched: bool) -> str:
    prefs = sorted({file.text(arg).strip('"') for file in app.files.values() for call in file.calls("getSharedPreferences")
                    for arg in file.arguments(call)[:1] if file.text(arg).startswith('"')})
    where = (f"SharedPreferences {', '.join(repr(p) for p in prefs)}" if prefs else "the app's own record store")
    skipped = " (the patched matching skips them: records now carry the model's id)" if patched else ""
    return (f"faces registered with the previous model ({', '.join(app.current_models)}, "
            f"{'/'.join(str(d) for d in sorted(old_dims))}-d) are stored in {where} and are not "
            f"comparable with {asset_file} ({spec.embedding_dim}-d){skipped}: re-enrol every face")


def _model_info(info) -> dict[str, Any]:
    return {"ops": [f"{op.name} v{op.version}" for op in info.ops], "min_runtime": info.min_runtime,
            "declared_min_runtime": info.declared_min_runtime, "external_buffers": info.external_buffers,
            "hybrid_int8": info.hybrid_int8, "sha256": info.sha256, "size_bytes": info.size_bytes}


def _verified_runtime(plan: DeployPlan) -> dict[str, Any]:
    """--verify-runtime: the model run on the app's runtime agrees with tensorflow, or CheckFailed."""
    check = verify_runtime(plan.model_path, plan.spec, plan.result.compatibility.target_runtime)
    if not check.passed:
        raise CheckFailed(f"tensorflow {check.tensorflow_version} and ai-edge-litert disagree on "
                          f"{plan.model_path.name}: min cosine {check.cosine_min:.6f} < {check.min_cosine_required}; "
                          "nothing was changed", hint="do not ship this model on that runtime")
    return asdict(check)


# ----------------------------------------------------------------------------------------------------------------
# revert
# ----------------------------------------------------------------------------------------------------------------
def revert(app_dir: str | Path, force: bool = False, dry_run: bool = False):
    """Undo the last ``deploy`` of ``app_dir`` from its backup set (refuses if those files were edited since).
    ``dry_run`` checks everything and says what would be restored and removed, writing nothing."""
    app_dir = Path(app_dir).resolve()
    if not app_dir.is_dir():
        raise InputError(f"app folder not found: {app_dir}")
    return revert_changes(app_dir, force=force, dry_run=dry_run)


__all__ = ["GENERATED_MARK", "kit_steps", "AppCodeError", "CompatibilityError", "CompatibilityVerdict", "DeployPlan", "DeployResult", "apply_deploy", "deploy",
           "plan_deploy", "revert", "resolve_model"]
