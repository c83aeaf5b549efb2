from __future__ import annotations

import click

from toolkit.commands.common import echo_json, quiet_option
from toolkit.io import read_json


@click.command("pipeline")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: every stage writes into it; re-running resumes and redoes only what changed. It "
                   "records paths relative to itself, so a moved run folder is still up to date.")
@click.option("--force", multiple=True, help="Re-run this stage even if it is up to date (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@quiet_option()
def pipeline_cmd(config, run_dir, force, as_json, quiet):
    """Run prepare -> train -> export -> evaluate -> parity -> bench -> deploy from one YAML config.

    Exit code 0 when the budget (int8 accuracy drop, parity) holds, 1 when it does not, 2 on bad input.
    """
    from toolkit.pipeline import raise_on_budget, run_pipeline

    result = run_pipeline(config, run_dir, force=tuple(force), progress=not (quiet or as_json))
    if as_json:
        echo_json(read_json(result.report_json))
    else:
        click.echo("stages:")
        for s in result.stages:
            click.echo(f"  {s.name:<9} {'cached' if s.cached else 'ran':<6} {s.seconds:8.1f} s")
        click.echo("accuracy ladder:")
        width = max((len(row["model"]) for row in result.ladder), default=0)  # "pytorch (fine-tuned, not shipped)"
        for row in result.ladder:
            if row.get("skipped"):
                click.echo(f"  {row['model']:<{width}} not measured: {row['skipped']}")
                continue
            tar, thr = (row.get("tar_at_far") or {}).get("0.001"), row.get("threshold")
            click.echo(f"  {row['model']:<{width}} acc {100 * row.get('accuracy_mean', 0):6.2f} "
                       f"± {100 * row.get('accuracy_std', 0):4.2f}  AUC {row.get('auc', 0):.4f}  "
                       f"TAR@1e-3 {'-' if tar is None else f'{100 * tar:6.2f}'}  "
                       f"thr {'-' if thr is None else f'{thr:.3f}'}")
        click.echo(f"report: {result.report_html}")
        click.echo(f"wall time: {result.seconds:.1f} s; budget: {'PASS' if result.passed else 'FAIL'}")
    raise_on_budget(result)
