"""4. Archive: cya's streaming bag upload against staging (tar to disk, fsync, boto3's
``upload_file``) of the same files, end to end, against the same server.

Servers: ``moto_server`` on loopback (itself the bottleneck, ~40-50 MB/s here) and a
do-nothing S3 sink on loopback (benchmarks/sink.py), which shows the client's own
ceiling. The local floor is reading the files and hashing them (SHA-256). Each
upload runs in a child process whose peak RSS is read from ``wait4``. Both clients
get the same botocore settings (unsigned payload, SHA-256 part checksums, 4 parts
in flight); staging uses boto3's TransferConfig with the same part size.

Also: for restores of dates across an archived year of a real cya tree (real
duplicity, archived to moto), the bytes a ranged fetch reads against the bytes of
the bags it thaws.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import CYA, Source, cya_setup, fresh
from benchmarks.sink import Sink

BUCKET = "cya-bench"
VOLUME = 200 * 10**6  # duplicity's default volume size
YEAR = "2000/2010/2012"


def make_year(root: Path, total: int, seed: int) -> Path:
    """A year level of duplicity-named files, ``total`` bytes of incompressible data:
    a full of 200 MB volumes and daily incrementals of a few MB, in a year, a month
    and a week level (each file linked where its chain holds it)."""
    rng = random.Random(seed)
    levels = [YEAR, f"{YEAR}/2012-12", f"{YEAR}/2012-12/2012-12-02"]
    for level in levels:
        (root / level / "files").mkdir(parents=True, exist_ok=True)
    written, number = 0, 0
    full = int(total * 0.8)
    while written < total:
        if written < full:
            size = min(VOLUME, full - written)
            name = f"duplicity-full.20121202T120000Z.vol{number + 1}.difftar.gpg"
            homes = levels[:1]
        else:
            size = min(total - written, rng.randint(1, 8) * 10**6)
            name = (f"duplicity-inc.20121202T120000Z.to.201212{3 + number % 25:02d}T12"
                    f"{number // 25 % 60:02d}00Z.vol1.difftar.gpg")
            homes = levels[1:]
        with open(root / homes[0] / "files" / name, "wb") as out:
            left = size
            while left:
                piece = min(left, 16 << 20)
                out.write(rng.randbytes(piece))
                left -= piece
        for home in homes[1:]:
            os.link(root / homes[0] / "files" / name, root / home / "files" / name)
        written += size
        number += 1
    return root


def year_plan(root: Path):
    from cya.core.bagging import YearFile, plan_bags

    files = [YearFile(str(p.relative_to(root)), p.stat().st_size)
             for p in sorted(root.rglob("*.gpg"))]
    return plan_bags(YEAR, files, {}, 10**13).bags[0]


def worker(mode: str, endpoint: str, root: str, scratch: str) -> None:
    """One upload of the whole year as one bag (run as a child process)."""
    from boto3.s3.transfer import TransferConfig

    from cya.archive.bags import write_bag
    from cya.archive.s3 import Remote, StreamingUpload
    from cya.config import Archive
    from cya.core.bagging import part_size

    remote = Remote(Archive(bucket=BUCKET, endpoint_url=endpoint, region="us-east-1"))
    bag = year_plan(Path(root))
    size = part_size(bag.estimated_bytes)
    key = f"bench/{mode}-{time.monotonic_ns()}.tar"
    if mode == "floor":
        for blob in bag.blobs:
            digest = hashlib.sha256()
            with open(Path(root) / blob.paths[0], "rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
    elif mode == "streaming":
        upload = StreamingUpload(remote, key, size, {"cya-digest": bag.digest})
        write_bag(bag, Path(root), upload)
        upload.close()
    elif mode == "staging":
        path = Path(scratch) / "bag.tar"
        with open(path, "wb") as out:
            write_bag(bag, Path(root), out)
            out.flush()
            os.fsync(out.fileno())
        remote.client.upload_file(
            str(path), BUCKET, key,
            ExtraArgs={"StorageClass": "DEEP_ARCHIVE", "ChecksumAlgorithm": "SHA256"},
            Config=TransferConfig(multipart_threshold=size, multipart_chunksize=size,
                                  max_concurrency=remote.in_flight, use_threads=True))
        path.unlink()
    else:
        raise SystemExit(f"unknown mode {mode}")


def measure(mode: str, endpoint: str, root: Path, scratch: Path) -> tuple[float, int]:
    """(seconds, peak RSS bytes) of one worker run."""
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.archive", mode, endpoint,
                              str(root), str(scratch)])
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"archive worker {mode} failed ({status})")
    return elapsed, usage.ru_maxrss * 1024


def start_moto(work: Path) -> tuple[subprocess.Popen, str]:
    """moto_server on a free loopback port; dummy credentials for every client."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                               "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    for _ in range(300):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return server, endpoint


def make_bucket(endpoint: str, name: str = BUCKET) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket=name)


def throughput(work: Path, quick: bool, seed: int, moto: str) -> dict:
    sizes = [128 * 2**20] if quick else [2**30, 4 * 2**30]
    result: dict = {}
    with Sink() as sink:
        for total in sizes:
            label = f"{total // 2**20}_MiB"
            root = make_year(fresh(work / f"year-{label}"), total, seed)
            scratch = fresh(work / "scratch")
            figures: dict = {}
            floor, _ = measure("floor", sink, root, scratch)
            figures["local_floor_read_sha256_MBps"] = round(total / floor / 1e6, 1)
            for server, endpoint in (("sink", sink), ("moto", moto)):
                for mode in ("staging", "streaming", "staging", "streaming"):
                    seconds, rss = measure(mode, endpoint, root, scratch)
                    key = f"{server}_{mode}"
                    figures.setdefault(f"{key}_MBps", []).append(round(total / seconds / 1e6, 1))
                    figures[f"{key}_peak_rss_MB"] = max(figures.get(f"{key}_peak_rss_MB", 0),
                                                        round(rss / 1e6, 1))
            for server in ("sink", "moto"):
                for mode in ("staging", "streaming"):
                    figures[f"{server}_{mode}_MBps"] = max(figures[f"{server}_{mode}_MBps"])
                figures[f"{server}_streaming_vs_staging"] = round(
                    figures[f"{server}_streaming_MBps"] / figures[f"{server}_staging_MBps"], 2)
            result[label] = figures
            fresh(root)
    return result


def ranged_fetch(work: Path, quick: bool, seed: int, moto: str) -> dict:
    """Real cya backups over 14 months, archived to moto with 40 GB bags (one bag per
    year); for restores of each month's end in the archived year: bytes fetched by
    ranged GETs against bytes of the bags thawed. One restore done for real."""
    from datetime import date, timedelta

    from cya.archive.retrieve import archived_view, plan_fetch
    from cya.catalog import Catalog
    from cya.core.chains import choose
    from cya.core.names import parse_time

    work = fresh(work / "ranged")
    source = Source(work / "source", seed, 200 if quick else 1000)
    env = cya_setup(work, source.root)
    config = Path(env["CYA_CONFIG"])
    config.write_text(config.read_text().replace('bucket = ""', f'bucket = "{BUCKET}-ranged"')
                      .replace('endpoint_url = ""', f'endpoint_url = "{moto}"'))
    make_bucket(moto, f"{BUCKET}-ranged")
    step = 28 if quick else 3
    days = [date(2012, 1, 1) + timedelta(days=n) for n in range(0, 366, step)]
    for day in days + [date(2013, 1, 20)]:  # the last finishes 2012: it is archived
        source.churn()
        subprocess.run([CYA, "--now", f"{day}T12:00:00Z", "backup"], env=env, check=True,
                       capture_output=True)
    tree = work / "cya" / "tree"
    fetched, thawed, rows = 0, 0, []
    with Catalog.open(tree / ".cya" / "catalog.sqlite", write=False) as catalog:
        view = archived_view(catalog)
        for month in range(1, 13):
            end = parse_time(f"2012{month:02d}28T235959Z")
            backup = choose(view, end)
            if backup is None:
                continue
            plan = plan_fetch(catalog, backup, "bulk")
            fetched += plan.fetch_bytes
            thawed += plan.estimate.thawed_bytes
            rows.append(round(plan.fetch_bytes / plan.estimate.thawed_bytes, 3))
    started = time.perf_counter()
    subprocess.run([CYA, "restore", "--date", "2012-06-28", "--target", str(work / "out"),
                    "--from-archive", "--wait"], env={**env, "CYA_THAW_POLL_SECONDS": "1"},
                   check=True, capture_output=True)
    return {
        "data": f"{source.describe()}; a backup every {step} days, 2012-01-01..2013-01-20",
        "restores": len(rows),
        "fetched_vs_thawed_bytes_median": sorted(rows)[len(rows) // 2] if rows else None,
        "fetched_vs_thawed_bytes_all": rows,
        "archived_restore_real_s": round(time.perf_counter() - started, 2),
    }


def run(work: Path, quick: bool, seed: int) -> dict:
    work = fresh(work / "archive")
    server, moto = start_moto(work)
    try:
        make_bucket(moto)
        return {"data": "a year of duplicity files (80% 200 MB full volumes, the rest "
                        "1-8 MB incrementals in a month and week level), random bytes, one bag",
                "throughput": throughput(work, quick, seed, moto),
                "ranged_fetch": ranged_fetch(work, quick, seed, moto)}
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    worker(*sys.argv[1:5])
