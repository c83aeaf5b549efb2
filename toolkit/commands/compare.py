"""``ftk compare`` and ``ftk match``: thin click wrappers over toolkit.compare and toolkit.match."""

from __future__ import annotations

from pathlib import Path

import click

from toolkit.commands.common import (
    build_embedder_options, echo_json, embedder_options, model_flags, pick_option, quiet_option,
)

from toolkit.constants import DEFAULT_FAR  # stdlib only: --help stays free of numpy
from toolkit.errors import InputError
from toolkit.io import check_outputs_free


def _load(model, backbone, input_size, normalization, align, num_threads):
    from toolkit.embedders import load_embedder

    return load_embedder(model, build_embedder_options(backbone, input_size, normalization, align, num_threads))


def _name(path: str) -> str:
    return Path(path).name


@click.command("compare")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False),
              help="ftk checkpoint, plain state_dict (with --backbone) or .tflite (float32 or int8).")
@click.option("--threshold", type=float, default=None,
              help="Cosine threshold for same/different (default: calibrated in the model's evaluation report).")
@click.option("--far", type=float, default=DEFAULT_FAR, show_default=True,
              help="False-accept rate whose calibrated threshold to use from the evaluation report.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG grid of crops and scores.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --plot file.")
@quiet_option()
@pick_option()
@embedder_options
def compare_cmd(images, model, threshold, far, as_json, plot, overwrite, quiet, pick, backbone, input_size,
                normalization, align, num_threads):
    """Cosine similarity between the faces in IMAGES (two or more), with same/different verdicts."""
    from toolkit.compare import compare_images

    if plot:
        check_outputs_free([Path(plot)], overwrite)
    embedder = _load(model, backbone, input_size, normalization, align, num_threads)
    result = compare_images(list(images), embedder, threshold, model_path=model, far=far, plot=plot, pick=pick,
                            model_flags=model_flags(backbone, input_size, normalization, align))
    if as_json:
        echo_json(result)
        return
    click.echo(f"model: {model} ({result.model_name}, {result.spec['backbone']}, crop={result.spec['crop']})")
    click.echo(result.threshold_note)
    for path, why in result.failures:
        click.echo(f"skipped {_name(path)}: {why}")
    labels = [f"[{i}]" for i in range(len(result.images))]
    for label, path in zip(labels, result.images):
        click.echo(f"{label} {path}")
    width = max(7, max(len(x) for x in labels) + 1)
    click.echo(" " * width + "".join(f"{x:>{width}}" for x in labels))
    for label, row in zip(labels, result.scores):
        click.echo(f"{label:<{width}}" + "".join(f"{v:>{width}.3f}" for v in row))
    names = [f"{_name(pair.a)} vs {_name(pair.b)}:" for pair in result.pairs]
    name_width = max((len(n) for n in names), default=0)
    for name, pair in zip(names, result.pairs):  # scores right-aligned, a minus sign included
        tail = f"  {pair.verdict}" if pair.verdict else ""
        click.echo(f"{name:<{name_width}} {pair.score:7.4f}{tail}")
    if result.plot:
        click.echo(f"wrote {result.plot}")


@click.command("match")
@click.argument("probe", type=click.Path(dir_okay=False))
@click.option("--gallery", "gallery_path", required=True, type=click.Path(exists=True),
              help="Folder of Person_Name/*.jpg to enrol, or a gallery .npz saved with --save-gallery.")
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False),
              help="ftk checkpoint, plain state_dict (with --backbone) or .tflite (float32 or int8).")
@click.option("--save-gallery", type=click.Path(dir_okay=False), default=None,
              help="Save the enrolled gallery to this .npz (only when --gallery is a folder).")
@click.option("--top-k", type=int, default=5, show_default=True, help="How many people to list.")
@click.option("--threshold", type=float, default=None,
              help="Accept threshold (default: calibrated in the model's evaluation report).")
@click.option("--far", type=float, default=DEFAULT_FAR, show_default=True,
              help="False-accept rate whose calibrated threshold to use from the evaluation report.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --save-gallery file.")
@quiet_option()
@pick_option("For the probe and the photos --gallery enrols.")
@embedder_options
def match_cmd(probe, gallery_path, model, save_gallery, top_k, threshold, far, as_json, overwrite, quiet, pick,
              backbone, input_size, normalization, align, num_threads):
    """Match the face in PROBE against a gallery exactly as the app does (best cosine, accept above threshold)."""
    from toolkit.reports import resolve_threshold
    from toolkit.match import enroll_gallery, load_gallery, match_probe, save_gallery as write_gallery

    source = Path(gallery_path)
    if save_gallery:
        if not source.is_dir():
            raise InputError("--save-gallery needs --gallery to be a folder of Person_Name/*.jpg to enrol")
        check_outputs_free([Path(save_gallery)], overwrite)
    if top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    embedder = _load(model, backbone, input_size, normalization, align, num_threads)
    choice = resolve_threshold(model, threshold, far, embedder.spec,
                               model_flags(backbone, input_size, normalization, align))
    if source.is_dir():
        gallery = enroll_gallery(source, embedder, progress=not (quiet or as_json), pick=pick)
        if save_gallery:
            write_gallery(gallery, save_gallery, overwrite=overwrite)
    else:
        gallery = load_gallery(source)
    result = match_probe(probe, gallery, embedder, choice.value, top_k, pick=pick)
    result.threshold_note = choice.note
    if as_json:
        echo_json(result)
        return
    if source.is_dir():
        click.echo(f"enrolled {len(gallery.embeddings)} images of {len(gallery.names)} people from {source}"
                   + (f" ({len(gallery.failures)} skipped)" if gallery.failures else ""))
        for path, why in gallery.failures:
            click.echo(f"  skipped {path}: {why}")
        if save_gallery:
            click.echo(f"saved gallery to {save_gallery}")
    else:
        click.echo(f"gallery {source}: {len(gallery.embeddings)} images of {len(gallery.names)} people")
    click.echo(choice.note)
    click.echo(f"probe {probe} (model {result.model_name}):")
    name_width = max((len(cand.name) for cand in result.top), default=0)
    for rank, cand in enumerate(result.top, 1):  # scores right-aligned, a minus sign included
        click.echo(f"  {rank:>{len(str(len(result.top)))}}. {cand.name:<{name_width}} {cand.score:7.4f}  (best of "
                   f"{cand.enrolled_images}: {_name(cand.image)})")
    if result.accepted is None:
        click.echo(f"best: {result.top[0].name} {result.top[0].score:.4f} (no threshold, no decision)")
    elif result.accepted:
        click.echo(f"accepted: {result.match} ({result.top[0].score:.4f} >= {result.threshold:.4f})")
    else:
        click.echo(f"rejected: unknown person (best {result.top[0].score:.4f} < {result.threshold:.4f})")
    click.echo(f"time: embed {result.embed_ms:.1f} ms + search {result.search_ms:.3f} ms "
               f"over {result.gallery_embeddings} embeddings (detection {result.detect_ms:.0f} ms)")
