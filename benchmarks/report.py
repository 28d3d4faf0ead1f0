"""python -m benchmarks.report RESULTS.json: the README's Performance tables, as RST."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def mb(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    lines = [f"Machine: {data['machine']}.", ""]
    if "overhead" in data:
        o = data["overhead"]
        lines += [f"**Backup overhead** ({o['data']}; median of interleaved pairs):", "",
                  "=================  =====  ==========  ===============  =====",
                  "days               pairs  cya backup  duplicity incr.  ratio",
                  "=================  =====  ==========  ===============  ====="]
        for key, label in (("plain_days", "plain"), ("new_level_days", "new week/month")):
            r = o[key]
            lines.append(f"{label:<17}  {r['pairs']:>5}  {r['cya_median_s']:>8.2f} s  "
                         f"{r['duplicity_median_s']:>13.2f} s  {r['ratio_median']:>4.2f}x")
        lines += ["=================  =====  ==========  ===============  =====", ""]
    if "simulate" in data:
        s = data["simulate"]
        lines += [f"**{s['days']} simulated days** ({s['data']}; restores verified by SHA-256; "
                  f"reference: restoring a chain of one full + 7 increments took "
                  f"{s['reference_full_plus_7_restore_s']:.2f} s):", "",
                  "======================  ========  =======  =====  ===========  "
                  "==================  ==================",
                  "strategy                stored    objects  chain  backup p50   "
                  "restore newest      restore oldest ask",
                  "======================  ========  =======  =====  ===========  "
                  "==================  =================="]
        for name, e in s["strategies"].items():
            restores = list(e["restores"].values())
            newest, oldest = restores[0], restores[-1]
            oldest_key = list(e["restores"])[-1].replace("_days_back", "d back")
            gap = (f", {oldest['days_earlier_than_asked']}d earlier"
                   if oldest["days_earlier_than_asked"] else "")
            if not oldest["verified_sha256"]:
                gap += ", WRONG STATE: that backup is gone"
            cells = [name, mb(e["stored_bytes"]), str(e["objects"]), str(e["newest_chain"]),
                     f"{e['backup_median_s']:.2f} s",
                     f"{newest['seconds']:.2f} s ({newest['vs_full_plus_7']:.1f}x)",
                     f"{oldest_key}: {oldest['seconds']:.2f} s{gap}"]
            widths = [22, 8, 7, 5, 11, 18]
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))
                         + "  " + cells[-1])
        lines += ["======================  ========  =======  =====  ===========  "
                  "==================  ==================", "",
                  f"cya stores {s['cya_stored_vs_monthly_keep_all']:.2f}x the bytes of "
                  "monthly fulls kept for the same period.", ""]
    if "treeops" in data:
        t = data["treeops"]
        lines += [f"**Tree operations** ({t['data']}, {t['levels']} levels), median of 5 runs "
                  "of the command, start-up included:", ""]
        for key, value in t.items():
            if key.endswith("_s"):
                lines.append(f"* ``{key[:-2]}``: {value:.2f} s")
        lines.append("")
    if "archive" in data:
        lines += _archive(data["archive"])
    if "archive-overhead" in data:
        lines += _archive_overhead(data["archive-overhead"])
    if "cost" in data:
        lines += _cost(data["cost"])
    print("\n".join(lines))


def _archive(a: dict) -> list[str]:
    rule = "=========  ======  ============  ============  =========  ==========  =========="
    lines = [f"**Archive upload** ({a['data']}; MB/s end to end, best of 2; peak RSS of "
             "the uploading process):", "", rule,
             "bag size   server  staging+      streaming     streaming  staging     streaming",
             "                   upload_file                 / staging  RSS         RSS",
             rule]
    for size, f in a["throughput"].items():
        for server in ("sink", "moto"):
            lines.append(
                f"{size.replace('_', ' '):<9}  {server:<6}  "
                f"{f[f'{server}_staging_MBps']:>7.1f} MB/s  "
                f"{f[f'{server}_streaming_MBps']:>7.1f} MB/s"
                f"  {f[f'{server}_streaming_vs_staging']:>8.2f}x  "
                f"{f[f'{server}_staging_peak_rss_MB']:>7.0f} MB  "
                f"{f[f'{server}_streaming_peak_rss_MB']:>7.0f} MB")
    floors = ", ".join(f"{size.replace('_', ' ')}: {f['local_floor_read_sha256_MBps']:.0f} MB/s"
                       for size, f in a["throughput"].items())
    r = a["ranged_fetch"]
    lines += [rule, "", f"Local floor (read + SHA-256): {floors}.", "",
              f"**Ranged fetch** ({r['data']}): restoring the end of each of {r['restores']} "
              "months of the archived year reads a median "
              f"{r['fetched_vs_thawed_bytes_median']:.2f}"
              f" of the bytes of the bags it thaws (all: {r['fetched_vs_thawed_bytes_all']}); "
              f"one such restore through moto_server took {r['archived_restore_real_s']:.1f} s.",
              ""]
    return lines


def _archive_overhead(o: dict) -> list[str]:
    return [f"**Archive overhead** ({o['data']}; median of {o['pairs']} interleaved pairs): "
            f"a daily ``cya backup`` with its archive step took {o['with_archive_median_s']:.2f} "
            f"s, the same backup with ``--no-archive`` {o['no_archive_median_s']:.2f} s: "
            f"{o['ratio_median']:.2f}x (goal: at most 1.25x; worst day {o['ratio_max']:.2f}x, "
            f"days that start a new level {o['new_level_days_ratio_median']:.2f}x).", ""]


def _table(widths: list[int], header: list[list[str]], rows: list[list[str]]) -> list[str]:
    """An RST simple table: the first column left-aligned, the others right-aligned."""
    rule = "  ".join("=" * w for w in widths)

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [rule, *map(line, header), rule, *map(line, rows), rule]


def _usd(value: float) -> str:
    return f"${value:,.0f}"


def _cost(c: dict) -> list[str]:
    lines = [f"**Ten years of Deep Archive, per cadence** ({c['data']}; incremental size as "
             "a share of the full, by days since the parent: "
             f"{c['measured']['inc_ratio_by_span_days']}; cya's defaults: keep 2, "
             "keep_years 0, min_age_days 180, 40 GB bags):", ""]
    rows = []
    for cadence, b in c["cadences"].items():
        lag = b["worst_lag_days"]
        rows.append([cadence, _usd(b["total_usd"]), _usd(b["storage_usd"]),
                     _usd(b["of_which_180_day_tail_usd"]), _usd(b["requests_usd"]),
                     _usd(b["early_deletion_usd"]),
                     f"{b['objects_uploaded']:,} / {b['objects_deleted']:,}",
                     f"{b['TB_months']:,.0f}", f"{b['bytes_kept_at_end_TB']:.1f} TB",
                     "same run" if lag == 0 else f"{lag} days",
                     f"{b['backups_never_offsite']:,}"])
    lines += _table([8, 7, 7, 8, 5, 8, 13, 9, 7, 8, 9],
                    [["cadence", "total", "storage", "of which", "reqs.", "early", "objects",
                      "TB-months", "kept at", "worst", "never"],
                     ["", "", "", "180-day", "", "deletion", "uploaded /", "", "end",
                      "off-site", "off-site"],
                     ["", "", "", "tail", "", "", "deleted", "", "", "lag", ""]], rows)
    lines += ["", f"Cadence ``backup`` (the default) costs {c['backup_vs_year']:.2f}x cadence "
              "``year`` over ten years (goal: at most 1.35x).", ""]
    rows = []
    for key, label in (("duplicity_deep_archive_keep_all", "duplicity deep archive, keep all"),
                       ("duplicity_deep_archive_keep_2_fulls",
                        "duplicity deep archive, keep 2")):
        b = c[key]
        rows.append([label, _usd(b["total_usd"]), _usd(b["storage_usd"]),
                     _usd(b["requests_usd"]), _usd(b["early_deletion_usd"]),
                     f"{b['bytes_kept_at_end_TB']:.1f} TB"])
    b = c["cadences"]["backup"]
    rows.insert(0, ["cya, cadence backup", _usd(b["total_usd"]), _usd(b["storage_usd"]),
                    _usd(b["requests_usd"]), _usd(b["early_deletion_usd"]),
                    f"{b['bytes_kept_at_end_TB']:.1f} TB"])
    lines += _table([33, 7, 7, 5, 8, 11],
                    [["strategy", "total", "storage", "reqs.", "early", "kept at end"],
                     ["", "", "", "", "deletion", ""]], rows)
    lines += ["", f"cya costs {c['cya_vs_duplicity_keep_all']:.2f}x duplicity's own Deep "
              f"Archive upload with nothing deleted, and ${c['cya_usd_per_TB_month_at_end']:.2f} "
              "per stored TB-month.", ""]
    return lines


if __name__ == "__main__":
    main()
