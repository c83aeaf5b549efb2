"""``ftk info``: what a checkpoint, a .tflite or an export folder contains."""

from __future__ import annotations

import click


@click.command("info")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info_cmd(path, as_json):
    """Show the spec, classes, ops and minimum runtime of PATH (checkpoint, .tflite or export folder)."""
    from toolkit.commands.common import echo_json
    from toolkit.export import describe_path

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
            click.echo(f"metrics: {meta['metrics']}")
        click.echo(f"sha256: {info['sha256']}  size: {info['size_bytes'] / 2**20:.2f} MiB")
    elif info["kind"] == "tflite":
        if info.get("spec"):
            _spec_lines(info["spec"])
        else:
            click.echo("spec: unknown (no ftk manifest beside the file)")
        _ops_lines(info["inspect"])
        if info["matches_manifest"] is False:
            click.echo("warning: the file's sha256 differs from its manifest entry (modified after export?)")
        click.echo(f"sha256: {info['sha256']}  size: {info['size_bytes'] / 2**20:.2f} MiB")
    else:
        manifest = info["manifest"]
        _spec_lines(manifest.get("spec") or {})
        source = manifest.get("source_checkpoint") or {}
        click.echo(f"from: {source.get('path')} (sha256 {str(source.get('sha256'))[:16]}, "
                   f"{source.get('num_classes')} classes, weights {source.get('weights_source')})")
        for name, entry in (manifest.get("artifacts") or {}).items():
            state = info["files"][name]
            status = "ok" if state["sha256_ok"] else ("MODIFIED" if state["present"] else "MISSING")
            click.echo(f"- {name}: {entry.get('precision')}, {entry.get('size_bytes', 0) / 2**20:.2f} MiB, "
                       f"file {status}")
            _ops_lines(entry, indent="  ")
        tools = manifest.get("tools") or {}
        click.echo("tools: " + ", ".join(f"{k} {v}" for k, v in tools.items() if v))


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
