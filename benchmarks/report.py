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
    print("\n".join(lines))


if __name__ == "__main__":
    main()
