"""Cache-lookup latency of the cost database at 1M measurements, and its write rate.

Fills a temporary database with ``--rows`` measurements (one bulk
transaction), then times :meth:`CostDB.lookup` for random existing and
missing (model, device, settings) keys. Alongside each lookup, in the same
process and interleaved call by call so both see the same machine noise, it
times two baselines on the same file through a bare ``sqlite3`` connection:

* ``pk``: ``SELECT * FROM measurements WHERE id = ?`` (a primary-key fetch);
* ``raw``: the lookup's own SQL, without building a ``Measurement``.

Then it times ``record_measurement`` (one fsync'd transaction each) into the
full database. Prints figures only; no assertions.

    .venv/bin/python bench/bench_costdb_lookup.py [--rows 1000000] [--samples 20]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from fleetnas.api.v1 import agent_pb2
from fleetnas.controller.costdb import CostDB, Measurement, measurement_uid, settings_hash

DEVICES = 10


def _sha(i: int) -> str:
    return f"{i:064x}"


def _settings(threads: int) -> agent_pb2.BenchmarkSettings:
    return agent_pb2.BenchmarkSettings(
        warmup_runs=10, min_runs=50, min_duration_s=1.0, max_runs=1000, max_duration_s=10.0,
        intra_op_threads=threads, inter_op_threads=1, providers=["CPUExecutionProvider"],
        graph_optimization=agent_pb2.GRAPH_OPTIMIZATION_ALL, seed=0,
        method=agent_pb2.METHOD_PLAIN, timeout_s=60.0, memory_cap_bytes=2 << 30,
    )


def _result(model: int, threads: int, samples: list[float], started_at: float):
    result = agent_pb2.BenchmarkResult(
        model_sha256=_sha(model), settings=_settings(threads), samples_ms=samples,
        agent_version="0.1.0", onnxruntime_version="1.32.0", started_at=started_at,
        host_fingerprint="bench-host", provider="CPUExecutionProvider", wall_s=1.0,
    )
    result.stats.median_ms = statistics.median(samples)
    return result


def _generate(rows: int, n_samples: int, rng: random.Random) -> Iterator[Measurement]:
    """``rows`` distinct measurements over models x DEVICES devices x 2 settings."""
    templates = {
        t: Measurement.from_result("d0", _result(0, t, [1.0], 0.0), recorded_at=0.0)
        for t in (1, 2)
    }
    for i in range(rows):
        model, rest = divmod(i, DEVICES * 2)
        device, threads = f"device-{rest // 2}", 1 + rest % 2
        template = templates[threads]
        samples = tuple(round(rng.uniform(1.0, 9.0), 4) for _ in range(n_samples))
        started = 1.7e9 + i
        yield dataclasses.replace(
            template,
            uid=measurement_uid(
                device, _sha(model), template.settings_hash, started,
                template.host_fingerprint, template.agent_version, samples,
            ),
            device=device, model_sha256=_sha(model), samples_ms=samples,
            median_ms=statistics.median(samples), latency_ms=statistics.median(samples),
            started_at=started, recorded_at=started,
        )


def _quantiles_us(times_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(times_ns)
    return ordered[len(ordered) // 2] / 1e3, ordered[int(len(ordered) * 0.99)] / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=20, help="samples per measurement")
    parser.add_argument("--lookups", type=int, default=20_000, help="per key kind")
    parser.add_argument("--writes", type=int, default=2_000)
    args = parser.parse_args()
    rng = random.Random(7)
    workdir = Path(tempfile.mkdtemp(prefix="bench_costdb_"))
    try:
        path = workdir / "bench.db"
        db = CostDB(path)
        start = time.perf_counter()
        added, _ = db.insert_measurements(_generate(args.rows, args.samples, rng))
        fill_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in workdir.iterdir()) / 1e6
        print(f"filled {added:,} measurements ({args.samples} samples each) in {fill_s:.1f} s "
              f"({added / fill_s:,.0f} rows/s, one transaction); files {size_mb:,.0f} MB")

        hashes = {t: settings_hash(_settings(t)) for t in (1, 2)}
        models = args.rows // (DEVICES * 2)
        bare = sqlite3.connect(path)
        pk_sql = "SELECT * FROM measurements WHERE id = ?"
        raw_sql = (
            "SELECT * FROM measurements WHERE model_sha256 = ? AND device = ? "
            "AND settings_hash = ? ORDER BY started_at DESC, id DESC LIMIT 1"
        )
        for kind in ("existing", "missing"):
            t_lookup: list[int] = []
            t_pk: list[int] = []
            t_raw: list[int] = []
            hits = 0
            for _ in range(args.lookups):
                model = rng.randrange(models) if kind == "existing" else models + rng.randrange(10**9)
                key = (_sha(model), f"device-{rng.randrange(DEVICES)}", hashes[rng.choice((1, 2))])
                row_id = rng.randrange(1, args.rows + 1)
                t0 = time.perf_counter_ns()
                found = db.lookup(*key)
                t1 = time.perf_counter_ns()
                bare.execute(pk_sql, (row_id,)).fetchone()
                t2 = time.perf_counter_ns()
                bare.execute(raw_sql, key).fetchone()
                t3 = time.perf_counter_ns()
                t_lookup.append(t1 - t0)
                t_pk.append(t2 - t1)
                t_raw.append(t3 - t2)
                hits += found is not None
            (p50, p99), (b50, b99), (r50, r99) = map(_quantiles_us, (t_lookup, t_pk, t_raw))
            print(f"lookup, {kind} keys ({hits}/{args.lookups} hits): "
                  f"p50 {p50:.1f} us, p99 {p99:.1f} us")
            print(f"  bare sqlite3 pk SELECT:      p50 {b50:.1f} us, p99 {b99:.1f} us  "
                  f"-> lookup/pk ratio p50 {p50 / b50:.2f}x, p99 {p99 / b99:.2f}x")
            print(f"  bare sqlite3 lookup SQL:     p50 {r50:.1f} us, p99 {r99:.1f} us  "
                  f"-> lookup/raw ratio p50 {p50 / r50:.2f}x, p99 {p99 / r99:.2f}x")
        bare.close()

        results = [
            _result(models + 1 + i, 1, [round(rng.uniform(1, 9), 4) for _ in range(args.samples)],
                    2e9 + i)
            for i in range(args.writes)
        ]
        start = time.perf_counter()
        for result in results:
            db.record_measurement("device-0", result)
        write_s = time.perf_counter() - start
        print(f"record_measurement: {args.writes / write_s:,.0f} /s "
              f"({write_s / args.writes * 1e3:.2f} ms each, one fsync'd transaction each, "
              f"into {db.count_measurements():,} rows)")
        db.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
