"""The command line: parse, build Settings and the clock, call one action, render.

This is the one place a CyaError — or anything unexpected — becomes a message and an
exit code (restic's ``default:`` branch): one line, the traceback only at ``-vv``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import click
from dateutil import tz

from cya import __version__, config
from cya.clock import show_time
from cya.core import units
from cya.core.dates import (
    DATE_EXAMPLES,
    NonexistentTime,
    out_of_range,
    parse_duration,
    parse_moment,
    parse_when,
)
from cya.core.fileindex import shown
from cya.core.remote import looks_remote
from cya.errors import EXIT_FAILED, CyaError, Stopped, UsageError, by_signal, from_os_error, handled

if TYPE_CHECKING:
    from cya.actions.archive import ArchiveResult
    from cya.actions.ls import TreeListing
    from cya.actions.trim import TrimResult

# Each command imports its action when it runs: cron pays only for what it uses.

log = logging.getLogger("cya")


@dataclass(frozen=True)
class Context:
    config_file: str | None
    now: datetime  # the clock: --now, or the system clock read once here
    real_now: datetime  # the system clock, whatever --now says
    verbosity: int  # -1 quiet, 0 normal, 1 -v, 2 -vv
    local: tzinfo  # the local time zone: dates without an offset are local

    def settings(self) -> config.Settings:
        settings = config.load(config.find_config(self.config_file))
        if settings.log_file is not None:
            _log_to(str(settings.log_file), self.verbosity, Masking())
        return settings

    def say(self, text: str) -> None:
        if self.verbosity >= 0:
            click.echo(text)

    def date(self, text: str, option: str = "--date") -> datetime:
        """A --date the user typed, as an aware time. Raise UsageError."""
        try:
            return parse_when(text, self.now, self.local)
        except NonexistentTime as error:
            raise UsageError(f"{option} {error}", "give the time with its offset, e.g. "
                             "2013-03-31T02:30+01:00") from None
        except ValueError:
            raise UsageError(f"{option} {text!r} is not a date",
                             f"use e.g. {DATE_EXAMPLES}") from None


class Live:
    """One status line on a terminal, rewritten in place at most five times a second:
    long work (a backup, a restore, an upload) shows how far it is. Nothing when
    stderr is not a terminal (cron, logs) or with -q."""

    def __init__(self, verbosity: int):
        self.enabled = verbosity >= 0 and sys.stderr.isatty()
        self.shown = 0
        self.last = 0.0

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        width = shutil.get_terminal_size().columns - 1
        text = text[:width]
        sys.stderr.write("\r" + text.ljust(self.shown))
        sys.stderr.flush()
        self.shown = len(text)

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * self.shown + "\r")
            sys.stderr.flush()
            self.shown = 0


def _stop(signum: int, _frame: object) -> None:
    raise Stopped(signum)


class CyaGroup(click.Group):
    def invoke(self, ctx: click.Context):
        verbosity = 0
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException:
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BaseException as error:  # noqa: BLE001 - the one place everything ends
            verbosity = ctx.obj.verbosity if isinstance(ctx.obj, Context) else 0
            report = _report(error)
            if report is None:
                raise
            message, detail, code = report
            click.echo(f"cya: error: {message}", err=True)
            if detail and verbosity >= 1:
                click.echo(detail, err=True)
            if verbosity >= 2 and not isinstance(error, CyaError | KeyboardInterrupt):
                click.echo(traceback.format_exc(), err=True, nl=False)
            log.debug("exit %s: %s", code, message)
            ctx.exit(code)
        finally:
            from cya.runs import Run

            if Run._current is not None:
                Run._current.close()


def _report(error: BaseException) -> tuple[str, str, int] | None:
    """(one line, detail, exit code) for anything a command raised; None for what is
    not ours to report (SystemExit)."""
    if isinstance(error, SystemExit | GeneratorExit):
        return None
    if isinstance(error, CyaError):
        return error.one_line(), error.detail, error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return (f"interrupted{by_signal(error)}; what was under way was undone or is "
                "finished by the next run, and nothing committed was lost", "", EXIT_FAILED)
    if isinstance(error, OSError):
        problem = from_os_error(error, "go on")
        return problem.one_line(), "", EXIT_FAILED
    if isinstance(error, sqlite3.DatabaseError):
        return (f"the tree's catalog is damaged ({error}); rebuild it from the tree: "
                "cya init --adopt", "", EXIT_FAILED)
    if isinstance(error, RecursionError | MemoryError):
        return (f"the input is too deeply nested or too large ({type(error).__name__})",
                "", EXIT_FAILED)
    text = str(error).splitlines()[0] if str(error) else ""
    return (f"unexpected {type(error).__name__}: {text}; run with -vv for the traceback "
            "and report it", "", EXIT_FAILED)


class Masking(logging.Filter):
    """Masks secrets in every log line: the passphrase, AWS keys and tokens (botocore
    logs request headers at debug level), whatever the line's shape."""

    PATTERNS = (
        re.compile(r"(X-Amz-Security-Token['\"]?\s*[:=]\s*b?['\"]?)[^'\",\s}]+", re.I),
        re.compile(r"(Credential=)[^/,\s]+", re.I),
        re.compile(r"(Signature=)[0-9a-f]+", re.I),
        re.compile(r"((?:aws_)?(?:secret_access_key|session_token|security_token|"
                   r"access_key_id)['\"]?\s*[:=]\s*['\"]?)[^'\",\s}]+", re.I),
    )
    SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                  "AWS_ACCESS_KEY_ID", "PASSPHRASE")

    def __init__(self) -> None:
        super().__init__()
        self.secrets = [v for k in self.SECRET_ENV if len(v := os.environ.get(k, "")) >= 4]

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        for pattern in self.PATTERNS:
            text = pattern.sub(r"\1***", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.mask(record.getMessage())
        record.args = ()
        return True


def _logging(verbosity: int, log_file: str | None) -> None:
    level = (logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1
             else logging.WARNING)
    masking = Masking()
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("cya: %(message)s"))
    console.setLevel(level)
    console.addFilter(masking)
    root = logging.getLogger()
    root.handlers = [console]
    root.setLevel(console.level)
    log.setLevel(min(logging.INFO, root.level))  # what a monitoring ping's body quotes
    if verbosity < 2:
        for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if log_file:
        _log_to(log_file, verbosity, masking)


def _log_to(path: str, verbosity: int, masking: Masking) -> None:
    """Also append this run's log to ``path`` (``--log-file``, or ``log_file`` in the
    config): timestamped, the process id on each line, secrets masked."""
    root = logging.getLogger()
    if any(isinstance(h, logging.FileHandler) for h in root.handlers):
        return  # --log-file wins over the config's
    try:
        handler = logging.FileHandler(path, encoding="utf-8", errors="backslashreplace")
    except OSError as error:
        raise from_os_error(error, f"open the log file {path}") from None
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s cya[{os.getpid()}] %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    handler.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    handler.addFilter(masking)
    root.addHandler(handler)
    root.setLevel(min(h.level for h in root.handlers))
    log.info("cya %s: %s", __version__, " ".join(sys.argv[1:]))


@click.group(cls=CyaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", metavar="FILE",
              help="Config file (default: $CYA_CONFIG, ~/.config/cya/config.toml, "
                   "/etc/cya/config.toml).")
@click.option("--now", metavar="DATETIME",
              help="Use this time instead of the clock (ISO date or date-time, local time "
                   "unless it has an offset).")
@click.option("-v", "--verbose", count=True, help="Say more (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
@click.option("--log-file", metavar="FILE",
              help="Also append timestamped, secret-masked lines of this run to FILE.")
@click.version_option(__version__, prog_name="cya")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, now: str | None, verbose: int,
         quiet: bool, log_file: str | None) -> None:
    """Multi-timescale duplicity backups in a hardlinked tree."""
    verbosity = -1 if quiet else verbose
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 still prints
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    local = tz.tzlocal()
    real_now = datetime.now(local)
    ctx.obj = Context(config_file, real_now, real_now, verbosity, local)
    _logging(verbosity, log_file)
    for signum in handled((signal.SIGTERM, signal.SIGHUP)):  # nohup's SIGHUP stays ignored
        signal.signal(signum, _stop)
    if now is not None:
        try:
            clock = parse_moment(now, local)
        except NonexistentTime as error:
            raise UsageError(f"--now {error}", "give the time with its offset, e.g. "
                             "--now 2013-03-31T02:30+01:00") from None
        except ValueError:
            raise UsageError(f"--now {now!r} is not a date or time",
                             "use e.g. --now 2012-12-04 or --now 2012-12-04T12:00") from None
        if out_of_range(clock):
            raise UsageError(f"--now {now!r} is outside the years 1970-2099 that duplicity's "
                             "time stamps can hold", "give a time in that range")
        ctx.obj = Context(config_file, clock, real_now, verbosity, local)
    from cya import runs

    runs.sweep(_stop_agent)


def _stop_agent(home: Path) -> None:
    """``gpg.stop_agent``, imported only when a dead run left a gpg home: ``ls`` and
    ``find`` of indexed backups start no process and need not load what starts them."""
    from cya import gpg

    gpg.stop_agent(home)


@main.command()
@click.option("--source", "sources", multiple=True, metavar="DIR",
              type=click.Path(path_type=Path), help="A directory to back up (repeatable).")
@click.option("--tree", metavar="DIR", type=click.Path(path_type=Path),
              help="Where the backup tree lives.")
@click.option("--passphrase-file", metavar="F", type=click.Path(path_type=Path),
              help="Passphrase file (0600); generated if it does not exist.")
@click.option("--gpg-key", metavar="ID", default="", help="Encrypt to this gpg key instead.")
@click.option("--no-encryption", is_flag=True, help="Do not encrypt (not recommended).")
@click.option("--bucket", default="",
              help="S3 bucket for the off-site archive (how soon: archive.cadence).")
@click.option("--prefix", default="", help="Key prefix in the bucket.")
@click.option("--endpoint-url", default="", help="S3-compatible endpoint (default: AWS).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.option("--adopt", is_flag=True,
              help="Take over a tree whose state (.cya, the catalog) is gone or damaged: "
                   "rebuild the catalog from its files. With a config in place, no "
                   "--source/--tree needed.")
@click.pass_obj
def init(obj: Context, sources, tree, passphrase_file, gpg_key, no_encryption, bucket, prefix,
         endpoint_url, region, force, adopt) -> None:
    """Write the config and create the tree (or adopt an existing one)."""
    from cya.actions import init as init_action

    absolute = config.absolute
    result = init_action.run(init_action.InitRequest(
        config_path=absolute(config.config_path_for_init(obj.config_file)),
        # user@host:/path is a remote source, kept as written
        sources=tuple(s if looks_remote(str(s)) else absolute(s) for s in sources),
        tree=absolute(tree) if tree is not None else None,
        passphrase_file=passphrase_file,
        gpg_key=gpg_key, no_encryption=no_encryption, bucket=bucket, prefix=prefix,
        endpoint_url=endpoint_url, region=region, force=force, adopt=adopt,
    ))
    if result.wrote_config:
        obj.say(f"wrote config {result.config_path} (mode 0600)")
    obj.say(f"tree {result.tree}")
    if result.set_aside is not None:
        obj.say(f"the damaged catalog is kept as {result.set_aside}")
    if result.adopted is not None:
        obj.say(f"adopted the tree: rebuilt the catalog with {result.adopted} restorable "
                "backup(s) from its files")
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
@click.option("--no-archive", is_flag=True,
              help="Do not send what is due off-site after it (nor trim what the bucket "
                   "lacks).")
@click.option("--dry-run", is_flag=True, help="Say where the backup would go; change nothing.")
@click.option("--allow-future", is_flag=True,
              help="Accept a --now later than the clock (no earlier backup can follow it).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def backup(obj: Context, no_trim: bool, no_archive: bool, dry_run: bool,
           allow_future: bool, as_json: bool) -> None:
    """Make one backup, placed in the timescale tree."""
    from cya.actions import backup as backup_action
    from cya.monitoring import LogTail, Monitor

    settings = obj.settings()
    monitor = None if dry_run else Monitor.from_settings(settings.monitoring)
    tail = LogTail()
    log.addHandler(tail)
    live = Live(-1 if as_json else obj.verbosity)
    try:
        result = backup_action.run(settings, backup_action.BackupRequest(
            now=obj.now, real_now=obj.real_now, dry_run=dry_run,
            trim=settings.trim.auto and not no_trim,
            archive=settings.archive.auto and not no_archive, allow_future=allow_future,
            progress=obj.say if obj.verbosity >= 1 and not as_json else None,
            monitor=monitor, live=live))
    except BaseException as error:
        if monitor is not None:
            code = error.exit_code if isinstance(error, CyaError) else EXIT_FAILED
            report = _report(error)
            monitor.finish(code, tail.text() + (report[0] if report else ""))
        raise
    finally:
        log.removeHandler(tail)
        live.clear()
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        _render_backup(obj, result)
    for warning in result.warnings:
        click.echo(f"cya: warning: {warning}", err=True)
    if monitor is not None:
        monitor.finish(EXIT_FAILED if result.warnings else 0,
                       tail.text() + "".join(f"warning: {w}\n" for w in result.warnings))
    if result.warnings:
        sys.exit(EXIT_FAILED)


def _render_backup(obj: Context, result) -> None:
    placement = result.placement
    if result.finished:
        obj.say(result.finished)
    verb = "would back up" if result.dry_run else "backed up"
    obj.say(f"{verb} {show_time(placement.time)} into {placement.leaf}: {placement.reason()}")
    if len(placement.link_into) > 1:
        obj.say("  in the chains of: " + ", ".join(str(level) for level in placement.link_into))
    stats = result.statistics
    if stats:
        obj.say(f"  {int(stats.get('SourceFiles', 0))} files, "
                f"{_size(stats.get('SourceFileSize', 0))} read, "
                f"{_size(stats.get('TotalDestinationSizeChange', 0))} stored")
    if result.archive is not None:
        _render_archive(obj, result.archive)
    if result.trim is not None and not result.trim.plan.empty:
        _render_trim(obj, result.trim)
    if result.upcoming is not None:
        _render_upcoming(obj, result.upcoming, "this backup would then trim")


def _render_upcoming(obj: Context, plan, what: str) -> None:
    """What the trim after the next backup deletes (so a dry run shows what is kept)."""
    if plan.empty:
        obj.say(f"{what} nothing")
    for decision in plan.delete:
        obj.say(f"{what} {decision.level}: {decision.reason}")


@main.command()
@click.option("--dry-run", is_flag=True, help="Print the plan and the bytes it frees; "
                                               "delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
def trim(obj: Context, dry_run: bool, as_json: bool) -> None:
    """Keep the newest N child levels in every level; delete the rest."""
    from cya.actions import trim as trim_action

    result = trim_action.run(obj.settings(), obj.now, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        _render_trim(obj, result)
        if result.upcoming is not None:
            _render_upcoming(obj, result.upcoming, "the next backup would trim")
        if obj.verbosity >= 1:
            for decision in result.plan.keep:
                obj.say(f"keep {decision.level}: {decision.reason}")
    for warning in result.warnings:
        click.echo(f"cya: warning: {warning}", err=True)
    if result.warnings:
        sys.exit(EXIT_FAILED)


def _render_trim(obj: Context, result: TrimResult) -> None:
    verb = "would delete" if result.dry_run else "deleted"
    for decision in result.plan.delete:
        obj.say(f"{verb} {decision.level}: {decision.reason}")
    if result.plan.empty:
        obj.say("nothing to trim")
    else:
        freed = "would free" if result.dry_run else "freed"
        obj.say(f"{freed} {_size(result.bytes_freed)} ({len(result.plan.delete)} level(s))")


@main.command()
@click.option("--date", "date_text", required=True, metavar="D",
              help="Restore the newest backup at or before D: 2013-03-01 (end of that day), "
                   "2013-03-01T18:30, 3D, 2W, 1M, 1Y or now.")
@click.option("--target", required=True, metavar="DIR", type=click.Path(path_type=Path),
              help="Where to restore (must be empty unless --force; never the tree, the "
                   "cache, the config, a whole source, / or $HOME).")
@click.option("--path", metavar="P", help="Restore only this file or directory (its path "
                                          "in the backup); it lands as DIR/<its name>.")
@click.option("--from-archive", is_flag=True,
              help="Restore from the archive in S3: thaw and fetch what the chain needs.")
@click.option("--tier", type=click.Choice(["bulk", "standard"]), default="bulk",
              show_default=True, help="Archive retrieval tier.")
@click.option("--wait", is_flag=True, help="Wait for an archive thaw to finish.")
@click.option("--dry-run", is_flag=True, help="Say which backup and level, and what it reads.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON.")
@click.option("--force", is_flag=True,
              help="Merge into a non-empty target; what the restore replaces is moved aside "
                   "into TARGET.cya-replaced-*, nothing is deleted.")
@click.option("--max-cost", metavar="USD", type=float,
              help="Refuse a restore from the archive whose estimate is dearer.")
@click.option("--no-metadata", is_flag=True,
              help="Do not re-apply hard links, ACLs, xattrs, holes and exact times.")
@click.option("--strict-metadata", is_flag=True,
              help="Exit 1 when some of that metadata could not be re-applied.")
@click.pass_obj
def restore(obj: Context, date_text, target, path, from_archive, tier, wait, dry_run,
            as_json, force, max_cost, no_metadata, strict_metadata) -> None:
    """Restore the tree's newest backup at or before a date."""
    from cya.actions import restore as restore_action

    settings = obj.settings()
    request = restore_action.RestoreRequest(
        asked=obj.date(date_text), target=config.absolute(target), path=path, force=force,
        from_archive=from_archive, tier=tier, wait=wait, dry_run=dry_run, max_cost=max_cost,
        metadata=not no_metadata, strict_metadata=strict_metadata)
    plan = restore_action.plan(settings, request)
    if as_json:
        if not dry_run:
            raise UsageError("--json goes with --dry-run", "add --dry-run")
        click.echo(json.dumps(plan.as_json(), indent=2))
        return
    backup = plan.backup
    what = shown(plan.path) if plan.path else "everything"
    head = "would restore" if dry_run else "restoring"
    obj.say(f"{head} {what} as of {show_time(backup.time)} from {backup.level} "
            f"(chain of {backup.chain_length}, {backup.volumes} volume(s), "
            f"{_size(plan.bytes_to_read)} to read) into {plan.target}")
    obj.say(plan.explain())
    if plan.fetch is not None:
        cost = plan.fetch.estimate
        obj.say(f"from the archive: thaw {cost.objects} bag(s), {_size(cost.thawed_bytes)} "
                f"({tier}, about {cost.hours} hours), fetch {_size(cost.fetched_bytes)}; "
                f"about ${cost.dollars:.2f}")
    if dry_run:
        return
    live = Live(obj.verbosity)
    try:
        result = restore_action.run(settings, plan, wait=wait, say=obj.say, live=live)
    finally:
        live.clear()
    obj.say(f"restored into {plan.target}")
    for line in result.metadata:
        obj.say(f"  {line}")
    if result.metadata_failed:
        click.echo(f"cya: warning: {result.metadata_failed} piece(s) of metadata could not be "
                   "re-applied (see above); the files themselves are restored", err=True)
    if result.replaced:
        obj.say(f"{result.replaced} entr{'y' if result.replaced == 1 else 'ies'} of "
                f"{plan.target} replaced; the previous versions are kept in {result.aside}")


@main.command("ls")
@click.option("--date", "date_text", metavar="D", help="List the files as of D.")
@click.argument("path", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def ls(obj: Context, date_text: str | None, path: str | None, as_json: bool) -> None:
    """The timescale tree; with --date, the files a backup holds."""
    from cya.actions import ls as ls_action

    settings = obj.settings()
    if date_text is None:
        if path:
            raise UsageError("a PATH needs --date", "e.g. cya ls --date 2013-03-01 /home/me")
        listing = ls_action.tree_listing(settings)
        if as_json:
            click.echo(json.dumps(listing.as_json(), indent=2))
            return
        _render_tree(obj, listing)
        return
    files = ls_action.file_listing(settings, obj.date(date_text), path)
    if as_json:
        click.echo(json.dumps(files.as_json(), indent=2))
        return
    where = (f"in the archive only: restoring it costs about ${files.archive_cost:.2f} "
             "(cya restore --from-archive)" if files.archive_cost is not None
             else f"from {files.backup.level}")
    obj.say(f"backup {show_time(files.backup.time)} {where}")
    _echo_lines(files.lines())


def _echo_lines(lines: list[str], chunk: int = 10_000) -> None:
    """Print lines a few thousand at a time: a listing can be 100,000s of lines, and
    one string of them all, then its encoded copy, would each hold as much again."""
    for start in range(0, max(len(lines), 1), chunk):
        click.echo("\n".join(lines[start:start + chunk]))


def _render_tree(obj: Context, listing: TreeListing) -> None:
    click.echo(f"{listing.tree}: {len(listing.levels)} levels, {listing.restorable} "
               f"restorable backups, {_size(listing.total_bytes)}")
    for level in listing.levels:
        depth = len(level.level.names) - 1
        times = [t for t, _ in level.backups]
        span = (f"{_day(times[0], obj)} .. {_day(times[-1], obj)}" if len(times) > 1
                else _day(times[0], obj) if times else "no complete backup")
        label = "  " * depth + ("└─ " if depth else "") + level.level.name
        mark = f"  [{level.archive}]" if level.archive else ""
        click.echo(f"{label:<28} {level.level.kind:<7} chain {len(times):>2}  {span:<36} "
                   f"unique {_size(level.unique_bytes)}{mark}")
        if obj.verbosity >= 1:
            for when, full in level.backups:
                click.echo(" " * 30 + show_time(when) + (" (full)" if full else ""))


    for year in listing.archive_only:
        click.echo(f"{year}: in the archive only (restore --from-archive)")


def _day(moment: datetime, obj: Context) -> str:
    return moment.astimezone(obj.local).strftime("%Y-%m-%d %H:%M")


@main.command()
@click.argument("pattern")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def find(obj: Context, pattern: str, as_json: bool) -> None:
    """Which backups hold paths matching a glob (name, or path with **)."""
    from cya.actions import find as find_action

    found = find_action.run(obj.settings(), pattern)
    if as_json:
        click.echo(json.dumps([f.as_json() for f in found], indent=2))
        return
    if not found:
        obj.say(f"no backup holds a path matching {pattern!r}")
        return
    lines = []
    shown_as: dict = {}  # entry -> its line: the same files show for backup after backup
    for item in found:
        where = (f"in the archive only: restoring it costs about ${item.archive_cost:.2f}"
                 if item.archive_cost is not None else str(item.backup.level))
        lines.append(f"{show_time(item.backup.time)}  ({where})")
        for entry in item.matches:
            line = shown_as.get(entry)
            if line is None:
                size = "" if entry.size is None else _size(entry.size)
                line = shown_as[entry] = f"  {size:>9}  {item.names.shown(shown(entry.path))}"
            lines.append(line)
    _echo_lines(lines)  # a broad pattern can match 100,000s of lines


@main.group(invoke_without_command=True)
@click.option("--dry-run", is_flag=True, help="Print the bag plan; upload nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def archive(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Put what is due off-site, as archive.cadence says (subcommands: status, verify,
    setup, prune)."""
    if ctx.invoked_subcommand is not None:
        return
    from cya.actions import archive as archive_action

    obj: Context = ctx.obj
    live = Live(-1 if as_json else obj.verbosity)
    try:
        result = archive_action.run(obj.settings(), obj.now, dry_run=dry_run,
                                    progress=None if as_json else obj.say, live=live)
    finally:
        live.clear()
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        _render_archive(obj, result)
    if result.lost_backups:
        click.echo("cya: error: the archive is damaged: the bucket can no longer restore "
                   + ", ".join(result.lost_backups) + "; run: cya archive verify", err=True)
        sys.exit(EXIT_FAILED)


def _render_archive(obj: Context, result: ArchiveResult) -> None:
    plan = result.plan
    for key in result.lost:
        click.echo(f"cya: warning: the bucket no longer holds {key}", err=True)
    if not plan.bags and not result.points and not result.years:
        obj.say("the bucket holds everything due" if not result.dry_run
                else "nothing new is due for the archive")
    elif result.dry_run:
        obj.say(f"would upload {len(plan.bags)} bag(s), {_size(plan.upload_bytes)} new, "
                f"{_size(plan.reused_bytes)} already archived, {plan.files} file(s)")
    else:
        obj.say(f"archived {len(result.uploaded)} bag(s), {_size(plan.upload_bytes)} new, "
                f"{len(result.points)} backup record(s)"
                + (f", year(s) {', '.join(result.years)}" if result.years else ""))
    if result.adopted:
        obj.say(f"found {len(result.adopted)} bag(s) an interrupted run had sent")
    if result.prune is not None and (result.prune.deleted or result.prune.plan.drop):
        obj.say(f"remote retention: dropped {len(result.prune.plan.drop)} point(s), deleted "
                f"{len(result.prune.deleted)} object(s)")


@archive.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def archive_status(obj: Context, as_json: bool) -> None:
    """What the archive holds, what awaits it, and pending thaws (from the catalog)."""
    from cya.actions import archive_admin

    state = archive_admin.status(obj.settings())
    if as_json:
        click.echo(json.dumps(state.as_json(), indent=2))
        return
    obj.say(f"bucket {state.bucket} (cadence {state.cadence}): {state.backups} archived "
            f"backup(s), newest {state.newest or 'none'}; {len(state.years)} finished "
            f"year(s); {state.bags} bag(s), {_size(state.bytes)}, about "
            f"${state.dollars_month:.2f}/month")
    for year in state.years:
        obj.say(f"  {year.year}: {year.files} file(s), {_size(year.bytes)}, "
                f"archived {year.archived_at}")
    if state.damaged:
        click.echo("cya: warning: the archive is damaged: the bucket can no longer restore "
                   + ", ".join(state.damaged), err=True)
    for bag, thaw in state.thaws.items():
        obj.say(f"thaw of {bag}: {thaw}")
    obj.say(f"system/ copied: {state.system_copied_at or 'never'}")


@archive.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def archive_verify(obj: Context, as_json: bool) -> None:
    """Check every recorded object is in the bucket with its size, class and checksum."""
    from cya.actions import archive_admin

    report = archive_admin.verify(obj.settings())
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        obj.say(f"checked {report.checked} object(s) in {report.bucket}")
        for note in report.notes:
            obj.say(f"note: {note}")
        for problem in report.problems:
            click.echo(f"cya: problem: {problem}", err=True)
        if not report.problems:
            obj.say("every recorded object is present and matches")
    if report.problems:
        sys.exit(EXIT_FAILED)


@archive.command("prune")
@click.option("--dry-run", is_flag=True, help="Print the plan; delete nothing (the default).")
@click.option("--yes", is_flag=True, help="Delete what the plan says.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def archive_prune(obj: Context, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Remote retention: keep what the tree keeps and the finished years (keep_years);
    delete objects no kept point needs once min_age_days old (younger ones wait)."""
    from cya.actions import archive_admin

    if dry_run and yes:
        raise UsageError("--dry-run and --yes contradict each other", "give one of them")
    result = archive_admin.prune(obj.settings(), obj.now, apply=yes)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    plan = result.plan
    if plan.empty and not result.deleted and not result.queued:
        obj.say(f"nothing to prune: keeping {len(plan.keep)} archived point(s)")
    for point in plan.drop:
        obj.say(f"{'dropped' if yes else 'would drop'} {point.name}: {point.why}")
    for item in plan.delete:
        obj.say(f"{'deleted' if yes else 'would delete'} {item.key} ({_size(item.size)})")
    for item, days in plan.defer:
        obj.say(f"{'queued' if yes else 'would queue'} {item.key}: {days:.0f} more day(s) "
                "before deleting it costs nothing extra")
    if plan.defer:
        obj.say(f"deleting those now would cost about ${result.early_deletion_avoided:.2f} "
                "in early-deletion fees")
    for key, due in result.queued:
        if yes and not any(o.key == key for o, _ in plan.defer):
            obj.say(f"still queued: {key} (due {due})")
    if not yes and not plan.empty:
        obj.say("nothing deleted; run: cya archive prune --yes")


@archive.command("setup")
@click.pass_obj
def archive_setup(obj: Context) -> None:
    """Check the bucket; block public access; add the lifecycle rule for stale uploads."""
    from cya.actions import archive_admin

    for line in archive_admin.setup(obj.settings()):
        obj.say(line)


@main.command()
@click.option("--html", "html_file", metavar="FILE", type=click.Path(path_type=Path),
              help="Also write the calendar as an HTML page.")
@click.option("--json", "as_json", is_flag=True, help="Print the calendar as JSON.")
@click.pass_obj
def timeline(obj: Context, html_file: Path | None, as_json: bool) -> None:
    """A calendar of restorable points, each day shaded by how near a restore gets."""
    from cya.actions import timeline as timeline_action

    rows = timeline_action.run(obj.settings(), obj.local)
    if html_file is not None:
        timeline_action.write_html(rows, config.absolute(html_file))
    if as_json:
        click.echo(json.dumps(timeline_action.as_json(rows), indent=2))
        return
    if not rows:
        obj.say("no backup yet")
        return
    obj.say("         " + "".join(str(n % 10) for n in range(1, 32)))
    click.echo("\n".join(f"{row.first:%Y-%m}  {row.line()}" for row in rows))
    obj.say(timeline_action.legend())
    if html_file is not None:
        obj.say(f"wrote {html_file}")


@main.command()
@click.option("--bucket", required=True, help="The bucket the archive is in.")
@click.option("--prefix", default="", help="Key prefix in the bucket.")
@click.option("--endpoint-url", default="", help="S3-compatible endpoint (default: AWS).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--tree", required=True, metavar="DIR", type=click.Path(path_type=Path),
              help="Where the new (empty) tree goes.")
@click.option("--passphrase-file", metavar="F", type=click.Path(path_type=Path),
              help="Your copy of the passphrase file (needed in passphrase mode: the config "
                   "copy in the bucket is encrypted with it).")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.pass_obj
def recover(obj: Context, bucket, prefix, endpoint_url, region, tree, passphrase_file,
            force) -> None:
    """Rebuild the config and catalog from the bucket after losing the machine."""
    from cya.actions import recover as recover_action

    result = recover_action.run(recover_action.RecoverRequest(
        config_path=config.absolute(config.config_path_for_init(obj.config_file)),
        tree=tree, bucket=bucket, prefix=prefix.strip("/"), endpoint_url=endpoint_url,
        region=region, passphrase_file=passphrase_file, force=force))
    obj.say(f"wrote config {result.config_path} (mode 0600) and tree {result.tree}")
    source = "the catalog copy in system/" if result.from_copy else "the records"
    obj.say(f"the archive holds {len(result.backups)} backup(s)"
            + (f", newest {result.backups[-1]}" if result.backups else "")
            + f", and {len(result.years)} finished year(s) (from {source})"
            + (": " + ", ".join(result.years) if result.years else ""))
    if result.added_from_indexes and result.from_copy:
        obj.say("added from their records: " + ", ".join(result.added_from_indexes))
    for warning in result.warnings:
        click.echo(f"cya: warning: {warning}", err=True)
    obj.say("next: cya restore --date D --target DIR --from-archive")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--max-age", metavar="DURATION",
              help="Exit 1 when the last backup is older (e.g. 36h, 2D).")
@click.pass_obj
def status(obj: Context, as_json: bool, max_age: str | None) -> None:
    """Last backup and its age, chain lengths, size, lock."""
    from cya.actions import status as status_action

    limit = None
    if max_age is not None:
        limit = parse_duration(max_age)
        if limit is None:
            raise UsageError(f"--max-age {max_age!r} is not a duration",
                             "use e.g. 36h, 2D or 1W")
    state = status_action.run(obj.settings(), obj.now)
    too_old = limit is not None and (state.age is None or state.age > limit)
    if as_json:
        click.echo(json.dumps({**state.as_json(), "too_old": too_old}, indent=2))
    else:
        if state.last_backup is None:
            obj.say(f"{state.tree}: no backup yet")
        else:
            hours = state.age.total_seconds() / 3600
            obj.say(f"last backup: {show_time(state.last_backup)} "
                    f"({hours:.1f} hours ago)")
            obj.say(f"current leaf: {state.current_leaf}")
        obj.say(f"levels: {state.levels}, restorable backups: {state.restorable}, "
                f"longest chain: {state.longest_chain}, size: {_size(state.total_bytes)}")
        obj.say(f"lock: {'held by ' + state.lock if state.lock else 'free'}")
        if state.running:
            obj.say("a backup (or another writer) is running now")
        if state.interrupted:
            obj.say("an interrupted backup will be finished or undone by the next run")
        if state.archive is not None:
            archive = state.archive
            lag = archive["lag_seconds"]
            obj.say(f"archive (cadence {archive['cadence']}): {archive['archived_backups']} "
                    f"backup(s) off-site, newest {archive['newest_archived'] or 'none'}"
                    + (f" ({lag / 3600:.1f} hours behind the tree)" if lag is not None else "")
                    + f"; {archive['files_due_not_archived']} file(s) due and not sent; "
                    f"{archive['archived_years']} finished year(s); "
                    f"{archive['pending_thaws']} thaw(s) pending")
            if archive["damaged"]:
                click.echo("cya: warning: the archive is damaged: the bucket can no longer "
                           "restore " + ", ".join(archive["damaged"]), err=True)
    if state.in_future:
        click.echo(f"cya: error: the newest backup ({show_time(state.last_backup)}) is in the "
                   "future: no later backup can be made before then; check the clock or the "
                   "--now that made it", err=True)
        sys.exit(EXIT_FAILED)
    if too_old:
        age = "no backup at all" if state.age is None else \
            f"the last backup is {state.age.total_seconds() / 3600:.1f} hours old"
        click.echo(f"cya: error: {age}, more than --max-age {max_age}", err=True)
        sys.exit(EXIT_FAILED)
    if state.archive is not None and state.archive["damaged"]:
        sys.exit(EXIT_FAILED)


@main.command()
@click.option("--read-data-subset", "subset_text", metavar="P",
              help="Read only part of the files: n/m reads the n-th of m slices (by name), "
                   "P% a share that moves on with every run (ceil(100/P) runs read all).")
@click.option("--record", is_flag=True,
              help="Hash the files with no recorded SHA-256 and record them as they are now.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def check(obj: Context, subset_text: str | None, record: bool, as_json: bool) -> None:
    """Verify the tree: every duplicity file against the SHA-256 recorded when it entered,
    hard links, and each level's chains by name; exit 1 on any problem."""
    from cya.actions import check as check_action
    from cya.core.integrity import parse_subset

    subset = None
    if subset_text is not None:
        try:
            subset = parse_subset(subset_text)
        except ValueError as error:
            raise UsageError(f"--read-data-subset {error}",
                             "e.g. --read-data-subset 10% or --read-data-subset 2/7") from None
    live = Live(-1 if as_json else obj.verbosity)

    def progress(files: int, of_files: int, done: int, total: int) -> None:
        live(f"checking: {files} of {of_files} file(s), {_size(done)} of {_size(total)}")

    try:
        report = check_action.run(obj.settings(), check_action.CheckRequest(
            subset=subset, record=record, progress=progress))
    finally:
        live.clear()
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        _render_check(obj, report)
    if not report.ok:
        sys.exit(EXIT_FAILED)


def _render_check(obj: Context, report) -> None:
    obj.say(f"checked {report.tree}: {report.files} duplicity file(s) in {report.levels} "
            f"level(s), {report.inodes} on disk, {_size(report.bytes)}")
    share = f" (--read-data-subset {report.subset})" if report.subset else ""
    obj.say(f"read {report.read_files} file(s), {_size(report.read_bytes)}{share}: "
            f"{report.verified} match the SHA-256 recorded when they entered the tree")
    if report.skipped:
        obj.say(f"{report.skipped} file(s) are left to other runs of the subset")
    if report.recorded:
        obj.say(f"recorded the SHA-256 of {report.recorded} file(s) as they are now")
    if report.not_verifiable:
        obj.say(f"note: {report.not_verifiable} file(s) have no recorded SHA-256 and were not "
                "verified; to record them as they are now: cya check --record")
    for note in report.notes:
        obj.say(f"note: {note}")
    for finding in report.warnings:
        click.echo(f"cya: warning: {_finding(finding)}", err=True)
    for finding in report.problems:
        click.echo(f"cya: problem: {_finding(finding)}", err=True)
    if report.repair_command:
        click.echo(f"cya: repair them with: {report.repair_command}", err=True)
    if report.ok:
        obj.say("no problem found" + (" (see the warnings)" if report.warnings else ""))


def _finding(finding) -> str:
    from cya.actions.check import FILE_KINDS

    where = ", ".join(finding.levels)
    if finding.kind in ("chain", "empty-level"):
        return f"level {where}: {finding.detail}"
    if finding.kind in ("unknown", "copy"):
        return f"{finding.name} {finding.detail}" if finding.kind == "copy" else finding.detail
    text = f"{finding.name} {finding.detail} {'from' if finding.kind == 'missing' else 'in'} " \
           f"{where}"
    if finding.kind in FILE_KINDS:
        text += f"; {finding.source_detail}"
    return text


@main.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--tier", type=click.Choice(["bulk", "standard"]), default="bulk",
              show_default=True, help="Archive retrieval tier, when the bucket has the copy.")
@click.option("--wait", is_flag=True, help="Wait for an archive thaw to finish.")
@click.option("--max-cost", metavar="USD", type=float,
              help="Refuse a thaw whose estimate is dearer.")
@click.option("--dry-run", is_flag=True, help="Say what would be repaired from where.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def repair(obj: Context, names: tuple[str, ...], tier: str, wait: bool,
           max_cost: float | None, dry_run: bool, as_json: bool) -> None:
    """Put back damaged or missing duplicity files (NAMEs, or what the last cya check
    found) from a good copy in another level or in the bucket."""
    from cya.actions import repair as repair_action

    result = repair_action.run(obj.settings(), repair_action.RepairRequest(
        names=names, tier=tier, wait=wait, dry_run=dry_run, max_cost=max_cost),
        say=(lambda text: None) if as_json else obj.say)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        _render_repair(obj, result)
    if not result.ok:
        sys.exit(EXIT_FAILED)


def _render_repair(obj: Context, result) -> None:
    the_plan = result.plan
    if not result.asked:
        obj.say("nothing to repair: the last cya check found no damaged or missing file")
    for name in the_plan.fine:
        obj.say(f"{name}: every level holds a good copy")
    done = {fix.name for fix in result.repaired}
    for fix in the_plan.fixes:
        verb = "repaired" if fix.name in done else "would repair"
        source = (f"the copy in {fix.good_level}" if fix.good_level is not None
                  else f"the bucket ({fix.blob.bag})")
        obj.say(f"{verb} {fix.name} ({fix.why}) from {source}")
    if the_plan.fetch is not None and result.dry_run:
        cost = the_plan.fetch.estimate
        obj.say(f"from the archive: thaw {cost.objects} bag(s), {_size(cost.thawed_bytes)} "
                f"({cost.tier}, about {cost.hours} hours), fetch {_size(cost.fetched_bytes)}; "
                f"about ${cost.dollars:.2f}")
    for name, why in the_plan.impossible:
        click.echo(f"cya: problem: {name} cannot be repaired: {why}", err=True)
    if result.repaired:
        obj.say("next: cya check")


@main.group("config")
def config_group() -> None:
    """The config file (subcommand: validate)."""


@config_group.command("validate")
@click.option("--config", "config_file", metavar="FILE",
              help="The config file to check (default: as for every command).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def config_validate(obj: Context, config_file: str | None, as_json: bool) -> None:
    """Validate the config without needing the tree (exit 0 valid, 2 invalid)."""
    from cya.actions import validate
    from cya.errors import EXIT_USAGE

    result = validate.run(config_file or obj.config_file)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
    else:
        for problem in result.problems:
            click.echo(f"cya: problem: {problem}", err=True)
        for note in result.notes:
            obj.say(f"note: {note}")
        if result.valid:
            obj.say(f"{result.config}: valid")
        else:
            click.echo(f"cya: error: {result.config} is not valid ({len(result.problems)} "
                       "problem(s))", err=True)
    if not result.valid:
        sys.exit(EXIT_USAGE)

_size = units.size
