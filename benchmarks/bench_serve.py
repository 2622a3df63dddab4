"""Load and crash test of ``nnderive serve`` on the loopback address (not part of the test run).

    PYTHONPATH=$PWD python benchmarks/bench_serve.py --students 300 --sets 10
    PYTHONPATH=$PWD python benchmarks/bench_serve.py --students 40 --sets 5 --crash-after 60

1. starts ``nnderive serve`` (the demo course by default) in a process group of its own on 127.0.0.1,
   with tokens issued for N simulated students;
2. every student signs in, opens each problem, and submits ``--sets`` answer sets (httpx async, at
   most ``--concurrency`` requests at once): half the fields the variant's key value, others a
   random number, a LaTeX formula or blank;
3. reports throughput, p50/p95 latency of a submission (the server answers once the set is graded,
   or after 20 s), and the CPU time used by the server and its grading workers;
4. checks that every acknowledged attempt is in the database with exactly the records
   ``nnderive check`` gives for the same answers (zero lost, zero different);
5. with ``--crash-after K``: a second run is stopped by SIGKILL to the server's process group after K
   acknowledged submissions; the server is restarted, and every committed attempt must be there and
   graded (the ungraded ones by the restart), again identical to ``nnderive check``.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LATEX = [r"$\frac{1}{2}$", r"$0.25 \cdot 2$", r"$(1 - 0.5)^2$", r"$\frac{", "<script>x</script>"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "derive.cli", "serve", *args]


def issue(course: Path, state: Path, n: int, base: str) -> list[str]:
    roster = state / "roster.csv"
    state.mkdir(parents=True, exist_ok=True)
    roster.write_text("id,name\n" + "".join(f"s{k:05d},Student {k}\n" for k in range(n)), encoding="utf-8")
    subprocess.run(cli(str(course), "--state", str(state), "--issue-tokens", str(roster), "--base-url", base),
                   check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True)
    rows = csv.DictReader((state / "roster_tokens.csv").read_text(encoding="utf-8").splitlines())
    return [r["link"] for r in rows if r["role"] == "student"]


class Server:
    def __init__(self, course: Path, state: Path, port: int, jobs: int | None):
        args = [str(course), "--state", str(state), "--port", str(port), "--rate", "100000"]
        if jobs:
            args += ["--jobs", str(jobs)]
        self.proc = subprocess.Popen(cli(*args), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        deadline = time.monotonic() + 600
        while not any("press Ctrl-C" in x for x in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start:\n" + "".join(self.lines))
            time.sleep(0.2)

    def cpu(self) -> float:
        """CPU seconds of the server and of its reaped children (the grading workers)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def keys(state: Path) -> dict[str, dict]:
    """version key -> its answer key (from the drawn variants)."""
    out = {}
    for manifest in (state / "variants").glob("*/variants.json"):
        pid = manifest.parent.name
        for v in json.loads(manifest.read_text())["variants"]:
            out[f"{pid}/{v['name']}"] = json.loads((manifest.parent / v["key"]).read_text())["answers"]
    return out


def flat(answers: dict) -> dict[str, str]:
    out = {}
    for k, v in answers.items():
        if isinstance(v, list):
            for i, x in enumerate(v):
                if isinstance(x, list):
                    out.update({f"{k}[{i},{j}]": y for j, y in enumerate(x)})
                else:
                    out[f"{k}[{i}]"] = x
        else:
            out[k] = v
    return out


async def student(link: str, sets: int, key_of: dict, rng: random.Random, sem: asyncio.Semaphore,
                  acked: list, latencies: list, stop: asyncio.Event) -> None:
    import httpx
    async with httpx.AsyncClient(timeout=300.0, follow_redirects=False) as c:
        async with sem:
            r = await c.get(link)
            assert r.status_code == 303, r.text[:200]
            base = link.split("/login")[0]
            home = (await c.get(base + "/")).text
        pids = re.findall(r'href="/p/([A-Za-z0-9_.-]+)"', home)
        for k in range(sets):
            pid = pids[k % len(pids)]
            if stop.is_set():
                return
            async with sem:
                page = (await c.get(f"{base}/p/{pid}")).text
                csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
                fields = re.findall(r'name="a:([^"]+)"', page)
                m = re.search(r"\(variant (\d+)\)</h1>", page)
                key = {}
                for vk, answers in key_of.items():
                    if vk.startswith(pid + "/") and m and int(vk.rsplit("_", 1)[1]) == int(m.group(1)):
                        key = flat(answers)
                data = {"csrf": csrf}
                for f in fields:
                    roll = rng.random()
                    if roll < 0.5 and f in key:
                        data[f"a:{f}"] = key[f]
                    elif roll < 0.75:
                        data[f"a:{f}"] = f"{rng.uniform(-1, 1):.4f}"
                    elif roll < 0.85:
                        data[f"a:{f}"] = rng.choice(LATEX)
                if len(data) == 1:
                    data[f"a:{fields[0]}"] = "0.5"
                if stop.is_set():
                    return
                started = time.perf_counter()
                r = await c.post(f"{base}/p/{pid}", data=data)
                latencies.append(time.perf_counter() - started)
            assert r.status_code == 303, (r.status_code, r.text[:300])
            acked.append(int(re.search(r"attempt=(\d+)", r.headers["location"]).group(1)))


async def run(links: list[str], sets: int, key_of: dict, concurrency: int, seed: int, acked: list,
              latencies: list, crash_after: int | None = None, server: Server | None = None) -> None:
    sem = asyncio.Semaphore(concurrency)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(student(link, sets, key_of, random.Random(seed * 100_003 + i), sem, acked, latencies,
                                         stop)) for i, link in enumerate(links)]
    if crash_after is None:
        await asyncio.gather(*tasks)
        return
    while len(acked) < crash_after and not all(t.done() for t in tasks):
        await asyncio.sleep(0.05)
    stop.set()
    server.kill()
    await asyncio.gather(*tasks, return_exceptions=True)     # the requests in flight fail: the server is gone


def rows(state: Path) -> list[sqlite3.Row]:
    db = sqlite3.connect(state / "course.sqlite")
    db.row_factory = sqlite3.Row
    out = db.execute("SELECT * FROM attempts ORDER BY id").fetchall()
    db.close()
    return out


def compare_with_check(course: Path, state: Path, attempts: list[sqlite3.Row], jobs: int | None) -> int:
    """How many graded attempts differ from what ``nnderive check`` says of the same answers."""
    from derive.grading import submissions as check
    groups: dict[str, list] = {}
    for a in attempts:
        groups.setdefault(a["problem"], []).append(a)
    different = 0
    with tempfile.TemporaryDirectory() as tmp:
        for pid, group in groups.items():
            files = []
            for a in group:
                variant = a["version"].partition("/")[2]
                f = Path(tmp) / f"{a['id']}.json"
                f.write_text(json.dumps({"problem": variant or pid, "answers": json.loads(a["answers"])}))
                files.append(str(f))
            spec = state / "variants" / pid if "/" in group[0]["version"] else next(course.glob(pid + ".*"))
            subs = check.grade(str(spec), files, jobs=jobs)
            for a, sub in zip(group, subs):
                got = json.loads(a["result"])
                same = sorted(json.dumps(r, sort_keys=True) for r in got["records"]) == \
                    sorted(json.dumps(r, sort_keys=True) for r in sub["records"])
                if not same or got["score"] != sub["score"]:
                    different += 1
                    if different <= 3:
                        print(f"  attempt {a['id']} differs from nnderive check", file=sys.stderr)
    return different


def wait_graded(state: Path, within: float) -> list[sqlite3.Row]:
    deadline = time.monotonic() + within
    while True:
        all_rows = rows(state)
        if all(r["status"] == "graded" for r in all_rows) or time.monotonic() > deadline:
            return all_rows
        time.sleep(0.5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--course", type=Path, default=ROOT / "derive/serve/demo")
    ap.add_argument("--students", type=int, default=300)
    ap.add_argument("--sets", type=int, default=10, help="answer sets per student")
    ap.add_argument("--concurrency", type=int, default=64, help="requests in flight at most")
    ap.add_argument("--jobs", type=int, default=None, help="the server's --jobs")
    ap.add_argument("--crash-after", type=int, default=None, help="SIGKILL the server after this many submissions")
    ap.add_argument("--state", type=Path, default=None, help="state directory (default: a new temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    state = args.state or Path(tempfile.mkdtemp(prefix="nnderive-bench-serve-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    links = issue(args.course, state, args.students, base)
    server = Server(args.course, state, port, args.jobs)
    failures = 0
    try:
        key_of = keys(state)
        acked: list[int] = []
        latencies: list[float] = []
        cpu0, t0 = server.cpu(), time.perf_counter()
        asyncio.run(run(links, args.sets, key_of, args.concurrency, args.seed, acked, latencies))
        wall, cpu = time.perf_counter() - t0, server.cpu() - cpu0
        all_rows = wait_graded(state, 600)
        by_id = {r["id"]: r for r in all_rows}
        lost = [a for a in acked if a not in by_id]
        pending = [r["id"] for r in all_rows if r["status"] != "graded"]
        q = statistics.quantiles(latencies, n=20)
        print(f"load: {args.students} students x {args.sets} answer sets = {len(acked)} submissions in {wall:.1f} s: "
              f"{len(acked) / wall:.2f} graded submissions/s; latency p50 {statistics.median(latencies):.2f} s, "
              f"p95 {q[18]:.2f} s; server CPU {cpu:.1f} s ({cpu / len(acked) * 1000:.0f} ms per submission, "
              f"{len(acked) / cpu:.2f} submissions per CPU-second); {os.cpu_count()} CPUs")
        different = compare_with_check(args.course, state, [by_id[a] for a in acked if a in by_id], args.jobs)
        print(f"  in the database: {len(acked) - len(lost)} of {len(acked)} (lost {len(lost)}), "
              f"ungraded {len(pending)}, different from nnderive check {different}")
        failures += len(lost) + len(pending) + different
        if args.crash_after:
            before = len(all_rows)
            acked2: list[int] = []
            asyncio.run(run(links, args.sets, key_of, args.concurrency, args.seed + 1, acked2, [],
                            crash_after=args.crash_after, server=server))
            after_kill = rows(state)
            committed = [r["id"] for r in after_kill[before:]]
            ungraded = [r["id"] for r in after_kill[before:] if r["status"] == "pending"]
            print(f"crash: SIGKILL after {len(acked2)} acknowledged submissions; {len(committed)} committed, "
                  f"{len(ungraded)} of them not yet graded")
            server = Server(args.course, state, port, args.jobs)
            final = wait_graded(state, 600)
            by_id = {r["id"]: r for r in final}
            lost = [a for a in committed + acked2 if a not in by_id]
            still = [a for a in committed if by_id[a]["status"] != "graded"]
            regraded = [a for a in ungraded if by_id.get(a) is not None and by_id[a]["status"] == "graded"]
            different = compare_with_check(args.course, state, [by_id[a] for a in committed if a in by_id], args.jobs)
            print(f"  after the restart: lost {len(lost)}, graded by the restart {len(regraded)} of {len(ungraded)}, "
                  f"still ungraded {len(still)}, different from nnderive check {different}")
            failures += len(lost) + len(still) + different
    finally:
        server.stop()
    print("OK" if failures == 0 else f"FAILED ({failures})")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
