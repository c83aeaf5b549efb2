"""``ftk cache``: what the cache holds per kind, and ``ftk cache clean``; thin click wrappers over toolkit.cache."""

from __future__ import annotations

import time

import click

from toolkit.commands.common import echo_json, quiet_option
from toolkit.wording import human_bytes, plural


def _day(mtime: float | None) -> str:
    return "-" if mtime is None else time.strftime("%Y-%m-%d", time.localtime(mtime))


def _show(as_json: bool) -> None:
    from toolkit.cache import DEFAULT_CLEAN, NEVER, cache_usage

    usage = cache_usage()
    if as_json:
        echo_json({**usage.__dict__, "kinds": [k.__dict__ for k in usage.kinds],
                   "other": [k.__dict__ for k in usage.other], "total_bytes": usage.total_bytes})
        return
    click.echo(f"cache: {usage.root} (FTK_CACHE_DIR moves it)")
    rows = [("kind", "entries", "size", "oldest", "newest", "what")]
    rows += [(k.kind, str(k.entries), human_bytes(k.bytes), _day(k.oldest), _day(k.newest), k.note)
             for k in usage.kinds]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join([r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]),
                              r[3].ljust(widths[3]), r[4].ljust(widths[4]), r[5]]).rstrip())
    click.echo(f"total: {human_bytes(usage.total_bytes)}; `ftk cache clean` removes {', '.join(DEFAULT_CLEAN)} "
               "(--kind K, --older-than DAYS)")
    for name, what in NEVER.items():
        click.echo(f"never cleaned: {name}/ ({what})")
    for other in usage.other:
        click.echo(f"left alone: {other.kind} ({human_bytes(other.bytes)}; not one of ftk's kinds)")


@click.group("cache", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print what the cache holds as JSON.")
@quiet_option()
@click.pass_context
def cache_cmd(ctx, as_json, quiet):
    """Show what ftk's cache ($FTK_CACHE_DIR, else ~/.cache/ftk) holds per kind, with sizes; `clean` removes it."""
    if ctx.invoked_subcommand is None:
        _show(as_json)


@cache_cmd.command("clean")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only this kind (repeatable): detections, crops, embeddings, kotlin, runtimes, benchmark_model. "
                   "Default: all but benchmark_model (your binaries).")
@click.option("--older-than", "older_than", type=click.FloatRange(min=0), default=None, metavar="DAYS",
              help="Only entries not written for this many days.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@quiet_option()
def clean_cmd(kinds, older_than, dry_run, as_json, quiet):
    """Remove cached entries (only inside the cache root; links are removed, never followed)."""
    from toolkit.cache import clean_cache

    result = clean_cache(tuple(kinds), older_than, dry_run)
    if as_json:
        echo_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    if dry_run:
        for path in result.removed:
            click.echo(f"  {path}")
    kept = f"; kept {plural(result.kept_newer, 'newer entry', 'newer entries')}" if older_than is not None else ""
    click.echo(f"{verb} {plural(len(result.removed), 'entry', 'entries')} ({human_bytes(result.removed_bytes)}) "
               f"from {result.root}{kept}")
    for error in result.errors:
        click.echo(f"could not remove {error}", err=True)
    if result.errors:
        raise SystemExit(1)
