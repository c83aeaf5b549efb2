from __future__ import annotations

import click

from toolkit.commands.common import quiet_option
from toolkit.constants import DEFAULT_FAR


def _threshold(value):
    if value is None or value.strip().lower() == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number nor 'auto'") from None


@click.command("deploy")
@click.argument("model", required=False, type=click.Path(exists=True))
@click.option("--app", "app_dir", required=True, type=click.Path(file_okay=False),
              help="Root of the Android app checkout to patch.")
@click.option("--variant", type=click.Choice(["int8", "float32", "float16"]), default="int8", show_default=True,
              help="Which artifact of an export folder to deploy.")
@click.option("--threshold", default=None,
              help="Match threshold (cosine) to write: a number, or 'auto' = the one ftk evaluate calibrated for "
                   "exactly this file at --far. Default: leave it (with a warning if it looks far off).")
@click.option("--far", type=float, default=DEFAULT_FAR, show_default=True, help="False-accept rate for --threshold auto.")
@click.option("--dry-run", is_flag=True, help="Print the diff and the runtime verdict; write nothing.")
@click.option("--bump-runtime", default=None, metavar="VERSION",
              help="Also set the app's org.tensorflow:tensorflow-lite dependency (and its -gpu companions) to VERSION.")
@click.option("--verify-runtime", is_flag=True,
              help="Run the model under tensorflow-cpu==<app runtime> in a cached venv and compare embeddings with "
                   "ai-edge-litert before changing anything.")
@click.option("--asset-name", default=None, help="File name in assets/ (default ftk_<backbone>_<precision>.tflite).")
@click.option("--app-code", type=click.Choice(["patch", "kit", "none"]), default=None,
              help="How much deploy does to app code. patch (default): the app crops, matches and stores records as "
                   "the model's contract says (ftk's generated Kotlin, smallest edits, refused with a report when "
                   "unsafe); kit: adds the model, the generated Kotlin and FtkModelConfig, changes no existing file "
                   "and prints the steps; none: the model file and the constants only.")
@click.option("--keep-app-preprocessing", is_flag=True, hidden=True, help="Old name of --app-code none.")
@click.option("--revert", is_flag=True, help="Undo the last ftk deploy of --app from its backup.")
@click.option("--force", is_flag=True, help="With --revert: revert even if the patched files were edited since. "
              "Deploying: ship despite a degenerate or unresolvable calibrated threshold (said loudly).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@quiet_option()
def deploy_cmd(model, app_dir, variant, threshold, far, dry_run, bump_runtime, verify_runtime, asset_name,
               app_code, keep_app_preprocessing, revert, force, as_json, quiet):
    """Put an exported model into an Android app checkout (EXPORT_DIR or .tflite), all-or-nothing."""
    from toolkit.commands.common import echo_json

    if revert:
        from toolkit.deploy import revert as revert_app

        result = revert_app(app_dir, force=force, dry_run=dry_run)
        if getattr(result, "recovery", None) and not as_json:  # a killed deploy or revert finished first
            click.echo(f"warning: {result.recovery}", err=True)
        if as_json:
            echo_json(result)
            return
        verb = ("would restore", "would remove") if dry_run else ("restored", "removed ")
        head = "dry run: --revert would restore" if dry_run else "reverted"
        verb_removed = "would remove" if dry_run else "removed"
        click.echo(f"{head} {_files(len(result.restored))}, {verb_removed} {_files(len(result.removed))} "
                   f"(backup {result.backup})")
        for path in result.restored:
            click.echo(f"  {verb[0]} {path}")
        for path in result.removed:
            click.echo(f"  {verb[1]} {path}")
        if dry_run:
            click.echo("nothing was written")
        return
    if model is None:
        raise click.UsageError("give the export folder or .tflite to deploy (or --revert)")

    from toolkit.deploy import AppCodeError, CompatibilityError, deploy

    try:
        result = deploy(model, app_dir, variant=variant, threshold=_threshold(threshold), far=far, dry_run=dry_run,
                        bump_runtime=bump_runtime, verify_runtime=verify_runtime, asset_name=asset_name,
                        keep_app_preprocessing=keep_app_preprocessing, app_code=app_code, force=force)
    except AppCodeError as exc:
        for line in exc.report:  # what was found where, and the way in (the error line follows)
            click.echo(line, err=True)
        raise
    if as_json:
        echo_json(result.to_dict())
    else:
        if dry_run:
            click.echo(result.diff or "(no changes: the app already runs this model with these settings)")
        click.echo(result.compatibility.describe())
        click.echo(describe_preprocessing(result.preprocessing))
        if result.runtime_verify:
            rv = result.runtime_verify
            click.echo(f"runtime verify: tensorflow {rv['tensorflow_version']} vs ai-edge-litert on "
                       f"{rv['num_inputs']} inputs: cosine min {rv['cosine_min']:.6f}, mean {rv['cosine_mean']:.6f}")
        for message in result.warnings:
            click.echo(f"warning: {message}", err=True)
        if dry_run:
            click.echo(f"dry run: {len(result.changed_files)} file(s) would change; nothing was written")
        elif result.applied:
            click.echo(f"deployed {result.asset} ({result.input_size}px in, {result.embedding_dim}-d out"
                       + (f", threshold {result.threshold:g} [{result.threshold_source}]" if result.threshold is not None
                          else "") + f"); changed {len(result.changed_files)} file(s); backup {result.backup_dir}")
            click.echo(f"undo with: ftk deploy --revert --app {app_dir}")
        else:
            click.echo("nothing to do: the app already runs this model with these settings")
    if dry_run and not result.compatibility.compatible:
        raise CompatibilityError("the model would be refused: " + "; ".join(result.compatibility.reasons),
                                 hint="pass --bump-runtime VERSION or export a compatible variant")


def _files(count: int) -> str:
    return f"{count} file" + ("" if count == 1 else "s")


def describe_preprocessing(info: dict) -> str:
    mode = info.get("mode", "patch" if info.get("patched") else "none")
    if mode == "none":
        return "app code: --app-code none: the model file and constants only; the app keeps its own face crop"
    head = {"patch": f"app code: patched to use the model's own crop ({info['crop']}), generated from its spec",
            "kit": "app code: --app-code kit: ftk's files added, no existing file changed; to wire them in:"}[mode]
    lines = [head]
    if mode == "kit":
        lines += [f"  {i}. {step}" for i, step in enumerate(info.get("steps", []), start=1)]
    lines += [f"  found: {line}" for line in info["found"]]
    lines += [f"  adds:  {path}" for path in info["added_files"]]
    return "\n".join(lines)
