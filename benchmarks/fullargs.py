"""Where a full and an incremental cost more than plain duplicity: duplicity with cya's
arguments, piece by piece.

    python -m benchmarks.fullargs [--files N] [--size-scale S] [--rounds N]

One generated source (benchmarks/scalesource.py), backed up with ``duplicity full`` by
three argument lists, interleaved (the order reversed every other round), each into an
empty target and cache:

* ``plain``: ``duplicity full SOURCE file://TARGET``;
* ``selection``: the same, but walking from ``/`` with cya's selection options (an
  ``--include`` per source, ``--exclude '**'``): what makes paths absolute;
* ``cya``: cya's exact argument list (``duplicity.backup_argv``, as ``cya backup``
  builds it), the log file as ``Duplicity.run`` adds it.

(Until cya read its file index from duplicity's signature file it ran duplicity with
``--verbosity info``, logging every stored path: results/fullargs.json, measured then,
has that list as ``cya`` and the list without it as ``cya, no file list``.)

Then as many incrementals: each round one day of churn (1% changed, 0.2% added, 0.1%
deleted), then ``duplicity incremental`` by each list into the chain its last full
began, interleaved the same way. The same source with the same changes: what an
incremental pays for walking from ``/`` is ``selection`` against ``plain``.

CPU time (user + sys) of the whole process tree, gpg included; medians and the ratio
of each to ``plain``. cya's own process (the metadata recording, the file index, the
tree) is not here: ``python -m benchmarks scale`` measures whole ``cya backup`` runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from benchmarks import measure
from benchmarks.common import DUPLICITY, base_env, cya_setup, fresh, median
from benchmarks.scalesource import ScaleSource

DAY = date(2013, 1, 2)


def argument_lists(work: Path, source: Path, env: dict) -> dict[str, list[str]]:
    """The three argument lists (after ``full`` or ``incremental``), each with
    ``{target}`` and ``{cache}`` where its own directories go and ``{time}`` for the
    backup's time."""
    from cya import config, duplicity

    settings = config.load(Path(env["CYA_CONFIG"]))
    plain = ["--current-time", "{time}", "--archive-dir", "{cache}", "--name", "x",
             "--num-retries", "1"]
    cya = duplicity.backup_argv(
        full=True, settings=settings, sources=[source], target=Path("{target}"),
        cache=duplicity.Cache(Path("{cache}"), "x"), tempdir=work / "tmp",
        time=datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC),
        never=[settings.tree], also=[settings.tree / ".cya" / "metadata"])[1:]
    assert cya[-1] == "file://{target}" and cya[0] == "--current-time"
    cya[1] = "{time}"
    cya += ["--log-file", str(work / "duplicity.log")]
    selection = duplicity.selection(settings, [source], [settings.tree])
    return {
        "plain": [*plain, str(source), "file://{target}"],
        "selection": [*plain, *selection, "file://{target}"],
        "cya": cya,
    }


def run(work: Path, files: int, size_scale: float, rounds: int, seed: int) -> dict:
    work = fresh(work / "fullargs")
    source = ScaleSource(work / "source", seed, files, size_scale)
    env = cya_setup(work, source.root)
    (work / "tmp").mkdir()
    lists = argument_lists(work, source.root, env)
    names = list(lists)

    def backup(command: str, name: str, day: date) -> float:
        """CPU seconds of one duplicity run by list ``name`` into its own chain."""
        (work / "duplicity.log").unlink(missing_ok=True)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        places = {"{target}": str(work / f"target-{name}"),
                  "{cache}": str(work / f"cache-{name}"),
                  "{time}": str(int(noon.timestamp()))}
        argv = []
        for arg in lists[name]:
            for place, value in places.items():
                arg = arg.replace(place, value)
            argv.append(arg)
        return measure.run([DUPLICITY, command, *argv], base_env(work)).cpu

    full: dict[str, list[float]] = {name: [] for name in lists}
    incremental: dict[str, list[float]] = {name: [] for name in lists}
    for number in range(rounds):
        for name in names if number % 2 == 0 else names[::-1]:
            fresh(work / f"target-{name}")
            fresh(work / f"cache-{name}")
            full[name].append(backup("full", name, DAY))
            print(f"round {number + 1} {name} full: {full[name][-1]:.2f} s CPU", flush=True)
    for number in range(rounds):  # the chains of the last round's fulls go on
        day = DAY + timedelta(days=number + 1)
        source.churn(day)
        for name in names if number % 2 == 0 else names[::-1]:
            incremental[name].append(backup("incremental", name, day))
            print(f"round {number + 1} {name} incremental: {incremental[name][-1]:.2f} s CPU",
                  flush=True)

    def summary(cpu: dict[str, list[float]]) -> dict:
        base = median(cpu["plain"])
        return {
            "cpu_s": {name: [round(value, 2) for value in values]
                      for name, values in cpu.items()},
            "median_cpu_s": {name: round(median(values), 2) for name, values in cpu.items()},
            "vs_plain": {name: round(median(values) / base, 3) for name, values in cpu.items()},
        }

    return {
        "data": source.describe(),
        "rounds": rounds,
        "cya_arguments": " ".join(lists["cya"]),
        "full": summary(full),
        "incremental": summary(incremental),
    }


def main() -> None:
    from benchmarks.__main__ import run_sized

    run_sized("fullargs", run, size_scale=0.5, rounds=3, seed=5,
              size_help="multiply every file size (0.5: about 0.4 GB at 25,000 files)")


if __name__ == "__main__":
    main()
