"""6. Archive overhead: a daily ``cya backup`` whose archive step sends the day's new files
off-site (cadence "backup", the default: a bag, its manifest, the backup's record and
encrypted file index, ``system/``, the remote retention) against the same backup with
``--no-archive``, both against ``moto_server`` on loopback.

Two trees of the same source with the same config, each with a bucket of its own; every
day both back up the same state of the source, in alternating order (A B / B A), so
drift in the machine's load falls on both. The first day (two fulls) is left out. With
``--no-archive`` and a bucket configured, the trim still lists the bucket once (it
keeps what the bucket does not hold), as it does for a user who passes that flag.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from benchmarks.archive import make_bucket, start_moto
from benchmarks.common import CYA, Source, cya_setup, fresh, median, timed
from cya.core.timescale import leaf_for


def _point_at(env: dict, bucket: str, endpoint: str) -> None:
    config = Path(env["CYA_CONFIG"])
    text = config.read_text()
    for old, new in (('bucket = ""', f'bucket = "{bucket}"'),
                     ('endpoint_url = ""', f'endpoint_url = "{endpoint}"')):
        assert old in text, f"{old} is not in the config cya init wrote"
        text = text.replace(old, new)
    config.write_text(text)


def _bucket_totals(endpoint: str, bucket: str) -> dict:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    found: dict[str, list[int]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", ()):
            kind = item["Key"].split("/", 1)[0]
            found.setdefault(kind, []).append(item["Size"])
    return {kind: {"objects": len(sizes), "bytes": sum(sizes)}
            for kind, sizes in sorted(found.items())}


def run(work: Path, quick: bool, seed: int) -> dict:
    work = fresh(work / "archive-overhead")
    server, endpoint = start_moto(work)  # sets dummy credentials for every client
    try:
        source = Source(work / "source", seed, 1000 if quick else 2000)
        envs = {}
        for name in ("archived", "no_archive"):
            envs[name] = cya_setup(work, source.root, name)
            make_bucket(endpoint, f"cya-overhead-{name.replace('_', '-')}")
            _point_at(envs[name], f"cya-overhead-{name.replace('_', '-')}", endpoint)
        start = date(2013, 1, 2)
        if quick:  # 6 plain days and 5 that start a week or a month (2013-02-03)
            days = [start + timedelta(days=i) for i in (0, 1, 2, 3, 4, 5, 6, 7, 11, 18, 25, 32)]
        else:
            days = [start + timedelta(days=i) for i in range(36)]
        pairs: list[tuple[float, float, bool]] = []
        for number, day in enumerate(days):
            if number:
                source.churn()
            now = f"{day}T12:00:00Z"

            def archived(now=now) -> float:
                return timed([CYA, "--now", now, "backup"], env=envs["archived"])

            def plain(now=now) -> float:
                return timed([CYA, "--now", now, "backup", "--no-archive"],
                             env=envs["no_archive"])

            if number % 2:
                b, a = plain(), archived()
            else:
                a, b = archived(), plain()
            if number:  # the first day makes two fulls
                pairs.append((a, b, leaf_for(day) != leaf_for(days[number - 1])))
        ratios = [a / b for a, b, _ in pairs]
        result = {
            "data": f"{source.describe()}; {len(pairs)} daily backups after the full, "
                    "cadence backup, moto_server on loopback",
            "pairs": len(pairs),
            "with_archive_median_s": round(median([a for a, _, _ in pairs]), 3),
            "no_archive_median_s": round(median([b for _, b, _ in pairs]), 3),
            "ratio_median": round(median(ratios), 3),
            "ratio_max": round(max(ratios), 3),
            "new_level_days_ratio_median": round(
                median([a / b for a, b, new in pairs if new]), 3),
            "bucket_at_end": _bucket_totals(endpoint, "cya-overhead-archived"),
        }
        return result
    finally:
        server.terminate()
        server.wait()
