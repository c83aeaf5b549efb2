"""``ftk info``: what a checkpoint, a .tflite or an export folder contains."""

from __future__ import annotations

import click

from toolkit.commands.common import echo_json, quiet_option
from toolkit.errors import InputError
from toolkit.io import sha256_file


@click.command("info")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@quiet_option()
def info_cmd(path, as_json, quiet):
    """Show the spec, classes, ops and minimum runtime of PATH (checkpoint, .tflite or export folder)."""
    info = describe_path(path)
    if as_json:
        echo_json(info)
        return
    click.echo(f"{info['kind']}: {info['path']}")
    if info["kind"] == "checkpoint":
        meta = info["meta"]
        _spec_lines(meta["spec"])
        names = meta.get("class_names") or []
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} total)" if len(names) > 8 else "")
        click.echo(f"classes: {meta['num_classes']}" + (f" ({shown})" if names else ""))
        for key in ("weights_source", "epoch", "config_hash", "created_at", "ftk_version", "torch_version"):
            if meta.get(key) is not None:
                click.echo(f"{key}: {meta[key]}")
        if meta.get("metrics"):
            click.echo("metrics: " + ", ".join(f"{k} {_rounded(v)}" for k, v in meta["metrics"].items()))
        click.echo(f"sha256: {info['sha256']}  size: {info['size_bytes'] / 2**20:.2f} MiB")
    elif info["kind"] == "tflite":
        if info.get("spec"):
            _spec_lines(info["spec"])
            where = {"manifest": "manifest.json beside the file (sha256 verified)",
                     "embedded": "the contract embedded in the file"}[info["contract_source"]]
            click.echo(f"contract: {where}")
            _provenance_lines(info.get("embedded_contract"))
        else:
            click.echo("spec: unknown (no ftk manifest lists the file and it carries no embedded contract)")
        _ops_lines(info["inspect"])
        for warning in info["warnings"]:
            click.echo(f"warning: {warning}")
        click.echo(f"sha256: {info['sha256']}  size: {info['size_bytes'] / 2**20:.2f} MiB")
    else:
        manifest = info["manifest"]
        _spec_lines(manifest.get("spec") or {})
        source = manifest.get("source_checkpoint") or {}
        click.echo(f"from: {source.get('path')} (sha256 {str(source.get('sha256'))[:16]}, "
                   f"{source.get('num_classes')} classes, weights {source.get('weights_source')})")
        for name, entry in (manifest.get("artifacts") or {}).items():
            state = info["files"][name]
            status = ("MISSING" if not state["present"] else "MODIFIED" if not state["sha256_ok"] else
                      "ok, but the manifest disagrees with it" if state["warnings"] else "ok")
            click.echo(f"- {name}: {entry.get('precision')}, {entry.get('size_bytes', 0) / 2**20:.2f} MiB, "
                       f"file {status}")
            _ops_lines(entry, indent="  ")
        tools = manifest.get("tools") or {}
        click.echo("tools: " + ", ".join(f"{k} {v}" for k, v in tools.items() if v))
        click.echo(f"manifest format_version: {manifest.get('format_version', 1)}")
        for name, state in info["files"].items():
            for warning in state["warnings"]:
                click.echo(f"warning: {warning}")


def describe_path(path) -> dict:
    """What a checkpoint, a .tflite or an export folder contains (the data behind ``ftk info``).

    A .tflite's spec comes from :func:`toolkit.manifest.artifact_status`: a manifest entry that verifies, else the
    contract embedded in the file; every failed check (modified file, edited manifest) is in ``warnings``.
    Artifact keys are checked to be plain file names before any file is opened.
    """
    from pathlib import Path

    from toolkit.manifest import MANIFEST_NAME, artifact_status, read_manifest

    path = Path(path)
    if not path.exists():
        raise InputError(f"not found: {path}")
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise InputError(f"{path} is a folder without {MANIFEST_NAME}; not an ftk export",
                             hint="give a checkpoint, a .tflite or an export folder")
        manifest = read_manifest(path)
        files = {}
        for name in manifest.get("artifacts") or {}:
            file = path / name
            if not file.is_file():
                files[name] = {"present": False, "sha256_ok": False, "warnings": [f"{name} is missing"]}
                continue
            status = artifact_status(file)
            files[name] = {"present": True, "sha256_ok": bool(status.matches_manifest), "warnings": status.warnings,
                           "embedded_contract": status.embedded is not None}
        return {"kind": "export", "path": str(path), "manifest": manifest, "files": files}
    if path.suffix.lower() == ".tflite":
        from toolkit.embedders import load_interpreter
        from toolkit.tflite.inspect import inspect_tflite

        inspected = inspect_tflite(path).to_dict()  # bounds-checked: a truncated or foreign file gets a clear error
        load_interpreter(path, num_threads=1)
        status = artifact_status(path)
        return {"kind": "tflite", "path": str(path), "size_bytes": path.stat().st_size,
                "sha256": sha256_file(path), "inspect": inspected, "spec": status.spec,
                "contract_source": status.source, "manifest_entry": status.manifest_entry,
                "matches_manifest": status.matches_manifest, "embedded_contract": status.embedded,
                "warnings": status.warnings}
    from toolkit.checkpoint import read_checkpoint_meta

    meta = read_checkpoint_meta(path)
    return {"kind": "checkpoint", "path": str(path), "size_bytes": path.stat().st_size,
            "sha256": sha256_file(path), "meta": meta.to_dict()}


def _rounded(value):
    """4 significant digits for a float (57.120000000000005 -> 57.12), anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else value


def _provenance_lines(contract: dict | None) -> None:
    if not contract:
        return
    source = contract.get("source_checkpoint") or {}
    calibration = contract.get("calibration") or {}
    line = (f"provenance: {contract.get('precision')} from checkpoint {source.get('name')} "
            f"(sha256 {str(source.get('sha256'))[:16]}), ftk {contract.get('ftk_version')}, "
            f"contract format_version {contract.get('format_version')}")
    if calibration:
        line += (f"; calibrated on {calibration.get('faces')} faces "
                 f"(crops sha256 {str(calibration.get('crops_sha256'))[:16]})")
    click.echo(line)


def _spec_lines(spec: dict) -> None:
    if not spec:
        return
    click.echo(f"backbone: {spec.get('backbone')}  input: [1, {spec.get('input_size')}, {spec.get('input_size')}, 3] "
               f"{spec.get('input_dtype')} {spec.get('channel_order')} {spec.get('value_range')}  "
               f"embedding: {spec.get('embedding_dim')}-d (L2 {'yes' if spec.get('l2_normalized') else 'no'})")
    click.echo(f"normalisation: (x - {spec.get('mean')}) / {spec.get('std')}  crop: {spec.get('crop')} "
               f"(margin {spec.get('box_margin')})")


def _ops_lines(entry: dict | None, indent: str = "") -> None:
    if not entry:
        return
    ops = entry.get("ops") or []
    text = ", ".join(f"{op['name']} v{op['version']} x{op['count']}" for op in ops)
    click.echo(f"{indent}ops: {text}")
    runtime = entry.get("min_runtime") or "unknown"
    extra = " (incomplete: " + ", ".join(entry.get("unknown_ops") or []) + ")" if entry.get("unknown_ops") else ""
    click.echo(f"{indent}minimum TFLite runtime: {runtime}{extra}; external buffers: "
               f"{'yes' if entry.get('external_buffers') else 'no'}")
