from __future__ import annotations

import click

from toolkit.commands.common import echo_json, pick_option, quiet_option


@click.command("prepare")
@click.argument("image_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Faces CSV to write; labels.json, rejects.csv and contact_sheet.png go beside it.")
@click.option("--min-images-per-person", type=int, default=1, show_default=True,
              help="Drop identities with fewer usable faces (>= 20 recommended for training a classifier).")
@click.option("--split", default="0.7,0.15,0.15", show_default=True,
              help="TRAIN,VAL,TEST fractions, applied per identity (stratified).")
@click.option("--holdout-identities", default=None, metavar="K|FRACTION",
              help="Set aside K people (or a fraction, e.g. 0.2) entirely: split 'holdout', label -1, "
                   "for verification on unseen identities.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the splits, hold-out and contact sheet.")
@pick_option()
@click.option("--contact-sheet", "contact_sheet", type=int, default=36, show_default=True,
              help="Images in contact_sheet.png (boxes and landmarks drawn); 0 for none.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True, help="Images per MTCNN batch.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@quiet_option()
def prepare_cmd(image_dir, out, min_images_per_person, split, holdout_identities, seed, pick, contact_sheet,
                batch_size, as_json, overwrite, quiet):
    """Detect faces (MTCNN) in IMAGE_DIR/Person_Name/*.jpg and write faces.csv with splits and labels.

    Images without a usable face (unreadable, corrupt, no face, too few of that person) are listed in rejects.csv
    with the reason; they never stop the run.
    """
    from toolkit.prepare import prepare

    result = prepare(image_dir, out, min_images_per_person=min_images_per_person, split=split,
                     holdout_identities=holdout_identities, seed=seed, pick=pick, contact_sheet=contact_sheet,
                     overwrite=overwrite, batch_size=batch_size, progress=not (quiet or as_json))
    if as_json:
        echo_json(result)
        return
    splits = ", ".join(f"{k} {v}" for k, v in result.split_counts.items() if v)
    click.echo(f"wrote {result.csv_path}: {result.n_faces} faces of {result.n_identities} identities ({splits})"
               + (f", {result.n_holdout_identities} held-out identities" if result.n_holdout_identities else ""))
    reasons = ", ".join(f"{v} {k}" for k, v in sorted(result.reject_reasons.items(), key=lambda kv: -kv[1]))
    click.echo(f"rejected {result.n_rejected} of {result.n_images} images -> {result.rejects_path}"
               + (f" ({reasons})" if reasons else ""))
    click.echo(f"labels -> {result.labels_path}")
    if result.contact_sheet_path:
        click.echo(f"contact sheet -> {result.contact_sheet_path} (check the boxes are on the right faces)")
    click.echo(f"{result.n_images} images in {result.seconds:.1f}s ({result.images_per_second:.1f} images/s)")
