"""The command line: parse, build Settings and the clock, call one action, render.

This is the one place a CyaError becomes a message and an exit code.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
from dateutil import tz

from cya import __version__, config
from cya.actions import backup as backup_action
from cya.actions import init as init_action
from cya.actions import trim as trim_action
from cya.core.dates import parse_moment
from cya.errors import EXIT_FAILED, CyaError, UsageError

log = logging.getLogger("cya")


@dataclass(frozen=True)
class Context:
    config_file: str | None
    now: datetime  # the clock: --now, or the system clock read once here
    verbosity: int  # -1 quiet, 0 normal, 1 -v, 2 -vv

    def settings(self) -> config.Settings:
        return config.load(config.find_config(self.config_file))

    def say(self, text: str) -> None:
        if self.verbosity >= 0:
            click.echo(text)


class CyaGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except CyaError as error:
            verbosity = ctx.obj.verbosity if isinstance(ctx.obj, Context) else 0
            click.echo(f"cya: error: {error.one_line()}", err=True)
            if error.detail and verbosity >= 1:
                click.echo(error.detail, err=True)
            ctx.exit(error.exit_code)


@click.group(cls=CyaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", metavar="FILE",
              help="Config file (default: $CYA_CONFIG, ~/.config/cya/config.toml, "
                   "/etc/cya/config.toml).")
@click.option("--now", metavar="DATETIME",
              help="Use this time instead of the clock (ISO date or date-time, local time "
                   "unless it has an offset).")
@click.option("-v", "--verbose", count=True, help="Say more (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
@click.version_option(__version__, prog_name="cya")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, now: str | None, verbose: int,
         quiet: bool) -> None:
    """Multi-timescale duplicity backups in a hardlinked tree."""
    verbosity = -1 if quiet else verbose
    logging.basicConfig(
        level=logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1
        else logging.WARNING,
        format="cya: %(message)s", stream=sys.stderr)
    local = tz.tzlocal()
    if now is None:
        clock = datetime.now(local)
    else:
        try:
            clock = parse_moment(now, local)
        except ValueError:
            raise UsageError(f"--now {now!r} is not a date or time",
                             "use e.g. --now 2012-12-04 or --now 2012-12-04T12:00") from None
    ctx.obj = Context(config_file, clock, verbosity)


@main.command()
@click.option("--source", "sources", multiple=True, required=True, metavar="DIR",
              type=click.Path(path_type=Path), help="A directory to back up (repeatable).")
@click.option("--tree", required=True, metavar="DIR", type=click.Path(path_type=Path),
              help="Where the backup tree lives.")
@click.option("--passphrase-file", metavar="F", type=click.Path(path_type=Path),
              help="Passphrase file (0600); generated if it does not exist.")
@click.option("--gpg-key", metavar="ID", default="", help="Encrypt to this gpg key instead.")
@click.option("--no-encryption", is_flag=True, help="Do not encrypt (not recommended).")
@click.option("--bucket", default="", help="S3 bucket for the archive of finished years.")
@click.option("--prefix", default="", help="Key prefix in the bucket.")
@click.option("--endpoint-url", default="", help="S3-compatible endpoint (default: AWS).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.pass_obj
def init(obj: Context, sources, tree, passphrase_file, gpg_key, no_encryption, bucket, prefix,
         endpoint_url, region, force) -> None:
    """Write the config and create the tree."""
    absolute = config.absolute
    result = init_action.run(init_action.InitRequest(
        config_path=absolute(config.config_path_for_init(obj.config_file)),
        sources=tuple(absolute(s) for s in sources),
        tree=absolute(tree),
        passphrase_file=passphrase_file,
        gpg_key=gpg_key, no_encryption=no_encryption, bucket=bucket, prefix=prefix,
        endpoint_url=endpoint_url, region=region, force=force,
    ))
    obj.say(f"wrote config {result.config_path} (mode 0600)")
    obj.say(f"tree {result.tree} (mode 0700)")
    if result.generated:
        obj.say(f"generated a passphrase in {result.passphrase_file} (mode 0600)")
        click.echo(f"cya: keep a copy of {result.passphrase_file} somewhere safe, off this "
                   "machine: without it no backup can be restored", err=True)
    elif result.passphrase_file:
        obj.say(f"using the passphrase in {result.passphrase_file}")
    for warning in result.warnings:
        click.echo(f"cya: warning: {warning}", err=True)
    obj.say("next: cya backup")


@main.command()
@click.option("--no-trim", is_flag=True, help="Do not trim after the backup.")
@click.option("--no-archive", is_flag=True, help="Do not archive finished years after it.")
@click.option("--dry-run", is_flag=True, help="Say where the backup would go; change nothing.")
@click.pass_obj
def backup(obj: Context, no_trim: bool, no_archive: bool, dry_run: bool) -> None:
    """Make one backup, placed in the timescale tree."""
    settings = obj.settings()
    result = backup_action.run(settings, obj.now, dry_run=dry_run,
                               trim=settings.trim.auto and not no_trim)
    placement = result.placement
    if result.recovered:
        obj.say(result.recovered)
    when = placement.time.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    verb = "would back up" if dry_run else "backed up"
    obj.say(f"{verb} {when} into {placement.leaf}: {placement.reason()}")
    if len(placement.link_into) > 1:
        obj.say("  in the chains of: " + ", ".join(str(level) for level in placement.link_into))
    stats = result.statistics
    if stats:
        obj.say(f"  {int(stats.get('SourceFiles', 0))} files, "
                f"{_size(stats.get('SourceFileSize', 0))} read, "
                f"{_size(stats.get('TotalDestinationSizeChange', 0))} stored")
    if result.trim is not None and not result.trim.plan.empty:
        _render_trim(obj, result.trim)
    for warning in result.warnings:
        click.echo(f"cya: warning: {warning}", err=True)
    if result.warnings:
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and the bytes it frees; "
                                               "delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
def trim(obj: Context, dry_run: bool, as_json: bool) -> None:
    """Keep the newest N child levels in every level; delete the rest."""
    result = trim_action.run(obj.settings(), obj.now, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    _render_trim(obj, result)
    if obj.verbosity >= 1:
        for decision in result.plan.keep:
            obj.say(f"keep {decision.level}: {decision.reason}")


def _render_trim(obj: Context, result: trim_action.TrimResult) -> None:
    verb = "would delete" if result.dry_run else "deleted"
    for decision in result.plan.delete:
        obj.say(f"{verb} {decision.level}: {decision.reason}")
    if result.plan.empty:
        obj.say("nothing to trim")
    else:
        freed = "would free" if result.dry_run else "freed"
        obj.say(f"{freed} {_size(result.bytes_freed)} ({len(result.plan.delete)} level(s))")


def _size(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count} B"
