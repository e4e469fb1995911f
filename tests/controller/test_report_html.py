"""``fleetnas report ID -o report.html`` on real stored searches (a real loopback agent).

One module fixture builds a cost DB the way a user would: a LUT of a tiny
NAS-Bench-201 space on the agent, a ``lut`` search (everything predicted),
then a ``measured`` search with the same seed, whose first generation (the
same uniform samples) measures the nets the LUT search predicted. Both
searches are reported, and the page is checked for what it must hold and
for what it must not (anything loaded from elsewhere, unescaped DB text), and
rendered in a real headless Chromium (Debian's ``chromium`` package: the test
fails, never skips, where it is missing).
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from fleetnas.controller.cli import main
from fleetnas.controller.costdb import CostDB
from fleetnas.controller.driver import SearchStore, load_search
from fleetnas.controller.fleet import Device, Fleet, save_fleet
from fleetnas.controller.local_agents import start_local_agents, stop_local_agents
from fleetnas.controller.report import front_rows

SPACE_CONFIG = json.dumps({"channels": 4, "cells_per_stage": 1})
TINY = ["--warmup", "2", "--min-runs", "5", "--max-runs", "20", "--min-duration", "0",
        "--max-duration", "0.2"]
LUT_SEARCH, MEASURED_SEARCH = 1, 2


@dataclass
class Stored:
    db_path: Path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    root = tmp_path_factory.mktemp("report")
    (agent,) = start_local_agents(1, root / "agents", name_prefix="r")
    try:
        fleet = root / "fleet.toml"
        save_fleet(Fleet.of([Device("r0", "cpu", agent.address)]), fleet)
        db = str(root / "cost.db")
        common = ["--space", "nb201", "--space-config", SPACE_CONFIG, "--fleet", str(fleet),
                  "--cache-dir", str(root / "onnx"), *TINY, "--quiet"]
        built = invoke("--db", db, "lut", "build", "--device", "r0", "--calibration-n", "0",
                       *common)
        assert built.exit_code == 0, built.output
        for mode in ("lut", "measured"):
            ran = invoke("--db", db, "search", "--class", "cpu", "--mode", mode, "--budget", "8",
                         "--population", "4", "--seed", "0", "--no-plot", *common)
            assert ran.exit_code == 0, ran.output
        yield Stored(Path(db))
    finally:
        stop_local_agents([agent])


def _report(db_path: Path, search_id: int, out: Path, *more: str) -> tuple[Result, str]:
    result = invoke("--db", str(db_path), "report", str(search_id), "-o", str(out), *more)
    return result, out.read_text(encoding="utf-8") if out.exists() else ""


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def _table_rows(page: str, table_id: str) -> list[str]:
    match = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert match, f"no table {table_id}"
    return re.findall(r"<tr[^>]*>(.*?)</tr>", match.group(1), re.S)


def test_a_measured_search_report_is_one_self_contained_page(stored: Stored, tmp_path: Path) -> None:
    result, page = _report(stored.db_path, MEASURED_SEARCH, tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'r.html'}" in result.stdout
    assert "read measurements" in result.stderr and "draw" in result.stderr  # progress on stderr

    # nothing loaded from anywhere: every src/href is inline data
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and all(link.startswith("data:image/png;base64,") for link in links)
    assert "<script" not in page and "<link" not in page
    for link in links:
        width, height = _png_size(base64.b64decode(link.split(",", 1)[1]))
        assert width > 200 and height > 200

    with CostDB(stored.db_path) as db:
        front = front_rows(load_search(SearchStore(db), MEASURED_SEARCH).engine)
        record = SearchStore(db).get(MEASURED_SEARCH)
        device = db.get_device("r0")
    rows = _table_rows(page, "front")
    assert len(rows) == len(front) > 0
    for member, row in zip(front, rows, strict=True):
        assert f"--rank {member.rank} -o search-{MEASURED_SEARCH}-rank-{member.rank}.onnx" in row
        assert html.escape(member.encoding) in row
        assert "cpu: fp32" in row
    assert f"{record.measured} measured" in page
    assert device is not None and device.description is not None
    assert device.description["runtime"]["onnxruntime_version"] in page
    assert "History" in page and "latency measurements" in page
    assert "This search has no predicted latency." in page


def test_a_lut_search_report_pairs_its_predictions_with_the_later_measurements(
    stored: Stored, tmp_path: Path
) -> None:
    result, page = _report(stored.db_path, LUT_SEARCH, tmp_path / "lut.html")
    assert result.exit_code == 0, result.output
    assert "LUT 1: nb201" in page
    pairs = _table_rows(page, "versus")
    # the measured search's first generation is the same four uniform samples; its second
    # follows the measured latencies, so it may or may not repeat the LUT search's children
    n = len(pairs)
    assert 4 <= n <= 8
    with CostDB(stored.db_path) as db:
        for row in pairs:
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
            predicted, measured, error = float(cells[3]), float(cells[4]), cells[5]
            uid = re.sub(r"</?code>", "", cells[7])
            m = db.get_measurement(uid)
            assert m is not None and m.device == "r0"
            assert measured == pytest.approx(m.latency_ms, rel=1e-3)
            # shown to 4 significant figures: the error is that of the stored values
            assert float(error.split()[0]) == pytest.approx(
                100 * (predicted / m.latency_ms - 1), abs=0.15)
    summary = _table_rows(page, "versus-summary")
    assert len(summary) == 1 and f"<td class=\"num\">{n}</td>" in summary[0]
    assert f"8 predicted latencies; {n} have a measurement, {8 - n} have none." in page


def test_every_value_from_the_db_is_escaped(stored: Stored, tmp_path: Path) -> None:
    db_path = tmp_path / "copy.db"
    shutil.copy(stored.db_path, db_path)
    evil = '<img src=x onerror="alert(1)">&'
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE searches SET status = 'failed', error = ? WHERE id = ?",
                     (evil, MEASURED_SEARCH))
    result, page = _report(db_path, MEASURED_SEARCH, tmp_path / "e.html")
    assert result.exit_code == 0, result.output
    assert evil not in page
    assert "failed (&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;)" in page


def test_a_given_reference_point_is_used_and_stated(stored: Stored, tmp_path: Path) -> None:
    result, page = _report(stored.db_path, MEASURED_SEARCH, tmp_path / "g.html",
                           "--reference", "latency[cpu]=30ms", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert "latency[cpu] 30 (given)" in page
    assert "accuracy" in page and "(worst trial + 10% of range)" in page


@pytest.mark.parametrize(("args", "message"), [
    (["99"], "no search 99"),
    ([str(MEASURED_SEARCH), "--reference", "params=3"], "params: not an objective"),
    ([str(MEASURED_SEARCH), "--reference", "latency[cpu]"], "expected NAME=VALUE"),
    ([str(MEASURED_SEARCH), "--reference", "latency[cpu]=fast"], "'latency[cpu]=fast'"),
])
def test_bad_input_is_one_line_error_and_writes_nothing(
    stored: Stored, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "bad.html"
    result = invoke("--db", str(stored.db_path), "report", *args, "-o", str(out))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# Test-only: after the page loaded, record each image's decoded size on <body>.
PROBE = ("<script>window.addEventListener('load', () => { document.body.dataset.images = "
         "JSON.stringify(Array.from(document.images, i => [i.naturalWidth, i.naturalHeight])); "
         "});</script>")


def _chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its stdout. The whole process group is
    killed if it hangs, so nothing is left behind."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: `apt-get install -y chromium` (Debian's package)")
    proc = subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}"
    return out


def test_the_report_renders_in_headless_chromium(stored: Stored, tmp_path: Path) -> None:
    from matplotlib.image import imread

    result, page = _report(stored.db_path, LUT_SEARCH, tmp_path / "report.html")
    assert result.exit_code == 0, result.output
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path / "profile-dom", "--dump-dom", probed.as_uri())

    probe = re.search(r'<body data-images="([^"]*)"', dom)
    assert probe, "the page did not finish loading"
    sizes = json.loads(html.unescape(probe.group(1)))
    assert len(sizes) == page.count("<img ") == 3  # front, history, measured vs predicted
    assert all(width > 200 and height > 200 for width, height in sizes)
    with CostDB(stored.db_path) as db:
        front = front_rows(load_search(SearchStore(db), LUT_SEARCH).engine)
    assert len(_table_rows(dom, "front")) == len(front) > 0
    assert 4 <= len(_table_rows(dom, "versus")) == len(_table_rows(page, "versus"))

    shot = tmp_path / "report.png"
    _chromium(tmp_path / "profile-shot", "--window-size=1280,2400", f"--screenshot={shot}",
              (tmp_path / "report.html").as_uri())
    pixels = imread(shot)
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels[..., :3].std() > 0.05, "the screenshot is blank"


# --- datasette/metadata.json: the canned queries, run with sqlite3 on the same real cost DB

METADATA = Path(__file__).resolve().parents[2] / "datasette" / "metadata.json"
COLUMNS = {
    "measurements_by_model": ["model_sha256", "space", "arch", "device", "device_class",
                              "settings_hash", "measurements", "min_latency_ms",
                              "mean_latency_ms", "max_latency_ms", "last_measured"],
    "lut_coverage": ["lut_id", "space", "device", "settings_hash", "status", "entries",
                     "blocks_total", "coverage_pct", "calibrated", "last_report_within_10_pct",
                     "source", "updated"],
    "searches": ["id", "space", "mode", "status", "budget", "trials", "measured", "device_runs",
                 "predicted", "step", "complete", "failed", "pending", "objectives", "created",
                 "finished", "wall_s", "error"],
    "search_front": ["rank", "candidate_id", "encoding", "source", "metrics", "model_sha256"],
}


def _canned(db_path: Path, name: str, **params: object) -> list[sqlite3.Row]:
    """Run canned query ``name`` as datasette would (unset parameters are empty strings)."""
    sql = json.loads(METADATA.read_text())["databases"]["fleetnas"]["queries"][name]["sql"]
    names = set(re.findall(r":(\w+)", sql))
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        cursor = conn.execute(sql, {n: params.get(n, "") for n in names})
        assert [d[0] for d in cursor.description] == COLUMNS[name]
        return cursor.fetchall()
    finally:
        conn.close()


def test_the_metadata_names_every_canned_query_with_a_title() -> None:
    queries = json.loads(METADATA.read_text())["databases"]["fleetnas"]["queries"]
    assert sorted(queries) == sorted(COLUMNS)
    assert all(q["title"] and q["description"] for q in queries.values())


def test_measurements_by_model_device_and_settings(stored: Stored) -> None:
    rows = _canned(stored.db_path, "measurements_by_model")
    with sqlite3.connect(stored.db_path) as conn:
        total, groups = conn.execute(
            "SELECT count(*), count(DISTINCT model_sha256 || device || settings_hash) "
            "FROM measurements").fetchone()
    assert len(rows) == groups > 0 and sum(r["measurements"] for r in rows) == total
    assert all(r["min_latency_ms"] <= r["mean_latency_ms"] <= r["max_latency_ms"] for r in rows)
    one = rows[0]["model_sha256"]
    assert {r["model_sha256"] for r in _canned(stored.db_path, "measurements_by_model",
                                                model=one[:12])} == {one}
    assert len(_canned(stored.db_path, "measurements_by_model", device="r0")) == len(rows)
    assert _canned(stored.db_path, "measurements_by_model", device="nope") == []


def test_lut_coverage(stored: Stored) -> None:
    (lut,) = _canned(stored.db_path, "lut_coverage")
    assert lut["device"] == "r0" and lut["status"] == "complete"
    assert lut["entries"] == lut["blocks_total"] > 0 and lut["coverage_pct"] == 100.0
    assert lut["calibrated"] == 0  # built with --calibration-n 0


def test_searches_with_their_counters(stored: Stored) -> None:
    rows = {r["id"]: r for r in _canned(stored.db_path, "searches")}
    with CostDB(stored.db_path) as db:
        store = SearchStore(db)
        for search_id in (LUT_SEARCH, MEASURED_SEARCH):
            record, row = store.get(search_id), rows[search_id]
            assert (row["mode"], row["status"], row["trials"], row["measured"],
                    row["device_runs"], row["predicted"]) == (
                record.mode, record.status, record.trials, record.measured,
                record.device_runs, record.predicted)
            assert row["complete"] == len(store.candidates(search_id, state="complete"))
    assert rows[LUT_SEARCH]["measured"] == 0 and rows[LUT_SEARCH]["predicted"] == 8


def test_a_search_front_matches_the_engines_ranks(stored: Stored) -> None:
    for search_id in (LUT_SEARCH, MEASURED_SEARCH):
        rows = _canned(stored.db_path, "search_front", search_id=search_id)
        with CostDB(stored.db_path) as db:
            front = front_rows(load_search(SearchStore(db), search_id).engine)
        assert [(r["rank"], r["candidate_id"]) for r in rows] == [
            (m.rank, m.candidate_id) for m in front]
    assert _canned(stored.db_path, "search_front", search_id=99) == []
