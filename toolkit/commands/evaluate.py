from __future__ import annotations

import click

from toolkit.constants import DEFAULT_FAR
from toolkit.commands.common import build_embedder_options, embedder_options, pick_option, quiet_option


@click.command("evaluate")
@click.argument("model", type=click.Path(dir_okay=False), metavar="CHECKPOINT_OR_TFLITE")
@click.option("--pairs", type=click.Path(dir_okay=False), default=None,
              help="LFW pairs file: pairs.txt (10 folds, the standard report) or pairsDevTest.txt (development).")
@click.option("--data", type=click.Path(file_okay=False), default=None,
              help="Image folder the pairs refer to (Name/Name_0001.jpg), e.g. lfw-deepfunneled. "
                   "Default: lfw-deepfunneled/ beside the pairs file.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Faces CSV from `ftk prepare` (it carries the splits and labels, so not a folder): top-1 "
                   "classification accuracy on its test split (checkpoints with a classifier head).")
@click.option("--far", type=float, default=DEFAULT_FAR, show_default=True,
              help="False accept rate at which to recommend the cosine threshold.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Report folder for report.json, roc.png, scores.png (default: ./<model stem>.eval/ in the "
                   "current folder, where deploy also looks).")
@click.option("--limit-pairs", type=int, default=None, help="Use at most N pairs (half same, half different).")
@pick_option("(LFW images are centred on the person.)")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Faces per embedding batch.")
@click.option("--simulate-app", type=click.Choice(["before", "after"]), default=None,
              help="Crop as the Android app does: 'before' ftk deploy (its own box crop from a sensor frame rotated "
                   "90 degrees, simulated) or 'after' (the generated Kotlin preprocessor, run on the JVM). "
                   "Report in ./<model stem>.app-<mode>.eval/.")
@click.option("--app", "app_dir", type=click.Path(file_okay=False), default=None,
              help="With --simulate-app after: an app checkout ftk deploy patched; its OWN crop function and input "
                   "builder make the crops (compiled against ftk's Android stubs, run on the JVM).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a table.")
@click.option("--overwrite", is_flag=True, help="Replace an existing report in the output folder.")
@quiet_option()
@embedder_options
def evaluate_cmd(model, pairs, data, csv_path, far, out_dir, limit_pairs, pick, batch_size, simulate_app, app_dir,
                 as_json, overwrite, quiet, backbone, input_size, normalization, align, num_threads):
    """Classification accuracy and LFW-protocol verification of a checkpoint or a .tflite.

    Works for ftk checkpoints, plain state_dicts (--backbone) and .tflite files: ours read input size,
    normalisation and crop from manifest.json beside them; for someone else's .tflite give --input-size and
    --normalization MEAN,STD (NHWC float32 input is assumed). Writes report.json, roc.png and scores.png.
    """
    from toolkit.evaluate import evaluate_model_file

    options = build_embedder_options(backbone, input_size, normalization, align, num_threads)
    result = evaluate_model_file(model, options, pairs=pairs, data=data, csv=csv_path, far=far, out_dir=out_dir,
                                 limit_pairs=limit_pairs, pick=pick, batch_size=batch_size, overwrite=overwrite,
                                 progress=not (quiet or as_json), simulate_app=simulate_app, app_dir=app_dir)
    if as_json:
        import json

        report = result.to_report()
        report["report_path"] = None if result.report_path is None else str(result.report_path)
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(format_result(result))


def format_result(result) -> str:
    lines = [f"model           {result.model_path} ({result.embedder}, sha256 {result.model_sha256[:12]})"]
    c = result.classification
    if c is not None:
        why = [f"{c.n_not_classes} of people the model has no class for" if c.n_not_classes else "",
               f"{c.n_no_face} without a usable face" if c.n_no_face else ""]
        skipped = f", {c.n_skipped} skipped ({'; '.join(w for w in why if w)})" if c.n_skipped else ""
        lines.append(f"classification  top-1 {c.accuracy:.2%} on {c.n_faces} '{c.split}' faces{skipped}")
    v = result.verification
    if v is not None:
        folds = "folds from the file" if v.folds_from_file else "derived folds"
        lines += [
            f"verification    {v.n_pairs} pairs ({v.n_same} same / {v.n_different} different), {v.n_folds} {folds}",
            f"  accuracy      {v.accuracy_mean:.2%} +- {v.accuracy_std:.2%} (threshold chosen on the other folds)",
            f"  AUC           {v.auc:.4f}",
            f"  EER           {v.eer:.4f} (threshold {cosine(v.eer_threshold)})",
        ]
        for key in sorted(v.tar_at_far, key=float, reverse=True):
            note = "" if v.far_resolvable[key] else " (FAR below 1/n: above every impostor)"
            lines.append(f"  TAR@FAR={key:<6} {v.tar_at_far[key]:.4f} (threshold {cosine(v.thresholds_at_far[key])})"
                         f"{note}")
        lines.append(f"  recommended cosine threshold at FAR {v.far:g}: {cosine(v.threshold)}; "
                     f"best-accuracy threshold {cosine(v.best_threshold)}")
        if v.n_center_crop_fallbacks:
            lines.append(f"  no face found in {v.n_center_crop_fallbacks} of {v.n_images} images (centre-cropped)")
    for note in result.notes:
        if "centre-cropped" not in note:
            lines.append(f"note: {note}")
    if result.report_path is not None:
        lines.append(f"report          {result.report_path} (+ roc.png, scores.png)")
    lines.append(f"time            {result.seconds:.1f}s")
    return "\n".join(lines)


def cosine(value: float) -> str:
    """Four decimals, or six where four would round a threshold up to 1.0000 and hide how degenerate it is."""
    return f"{value:.4f}" if value < 0.99995 else f"{value:.6f}"
