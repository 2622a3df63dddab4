"""``nnderive serve --demo`` in a real browser: Playwright driving Debian's Chromium.

A student signs in by the printed link, opens a problem, sees the formulas typeset (KaTeX, no error
elements), types a wrong number and a right formula (the preview typesets it), submits, and reads
the verdicts and the feedback; then the lecturer signs in and downloads the grades CSV.  Screenshots
go to $NNDERIVE_SCREENSHOTS (default /tmp/nnderive-serve-screenshots).
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("NNDERIVE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]

pytest.importorskip("starlette", reason="the 'serve' extra is not installed")
pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the 'browser' extra)")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo server in a process of its own; yields (student link, lecturer link, state dir)."""
    state = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "derive.cli", "serve", "--demo", "--port", str(port),
                             "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300          # a hang guard for the slow start of a busy machine
        while not any("press Ctrl-C" in line for line in lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the demo server did not start:\n" + "".join(lines))
            time.sleep(0.2)
        text = "".join(lines)
        student = re.search(r"student:\s+(\S+)", text).group(1)
        lecturer = re.search(r"lecturer:\s+(\S+)", text).group(1)
        yield student, lecturer, state
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)


def test_a_student_answers_and_the_lecturer_downloads_grades(demo, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    student, lecturer, _ = demo
    shots = Path(os.environ.get("NNDERIVE_SCREENSHOTS", "/tmp/nnderive-serve-screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(student)
            expect(page.locator("h1")).to_have_text("Your problems")
            page.screenshot(path=str(shots / "1_home.png"), full_page=True)
            page.get_by_role("link", name=re.compile("Homework 3")).click()
            expect(page.locator(".statement .katex").first).to_be_visible()
            typeset = page.locator(".statement .tex")
            assert typeset.count() >= 2                                       # given values, the graph's nodes
            assert page.locator(".statement .tex .katex").count() == typeset.count()   # each one typeset
            assert page.locator(".katex-error").count() == 0
            page.screenshot(path=str(shots / "2_problem.png"), full_page=True)

            # h1 = sigmoid(...) of weights in [-0.9, 0.9] and inputs in [0, 1] lies in (0.14, 0.86): 0.0123 is wrong
            page.fill("input[name='a:h1']", "0.0123")
            formula = r"$(o_1 - y_1)\,o_1(1 - o_1)$"
            page.fill("input[name='a:grad_In_o1']", formula)
            row = page.locator("tr", has=page.locator("input[name='a:grad_In_o1']"))
            expect(row.locator("td.preview .katex")).to_be_visible()        # the live preview typeset it
            page.get_by_role("button", name="Submit these answers").click()
            expect(page.locator("p.status")).to_contain_text("points")
            h1 = page.locator("tr", has=page.locator("input[name='a:h1']"))
            expect(h1.locator(".badge")).to_have_text("wrong")
            expect(h1.locator(".feedback")).to_contain_text("check how it is computed: h₁ = ")
            expect(row.locator(".badge")).to_have_text("correct")
            expect(row.locator(".feedback")).to_contain_text("proved")
            assert page.locator("input[name='a:grad_In_o1']").input_value() == formula   # kept for resubmitting
            assert page.locator(".katex-error").count() == 0
            page.screenshot(path=str(shots / "3_verdicts.png"), full_page=True)

            lect = browser.new_page(viewport={"width": 1280, "height": 900})
            lect.set_default_timeout(60_000)
            lect.goto(lecturer)
            expect(lect.locator("h1")).to_have_text("Lecturer's overview")
            lect.screenshot(path=str(shots / "4_lecturer.png"), full_page=True)
            with lect.expect_download() as info:
                lect.get_by_role("link", name="Download grades (CSV)").click()
            target = tmp_path / "grades.csv"
            info.value.save_as(target)
        finally:
            browser.close()
    rows = list(csv.DictReader(target.read_text(encoding="utf-8").splitlines()))
    assert [r["student_id"] for r in rows] == ["demo"]
    # hw_222's policy (docs/examples/hw_222.toml): 1 point for grad_In_o1, 12 in all; h1 wrong earns 0
    assert (float(rows[0]["hw_222 score"]), float(rows[0]["hw_222 max"])) == (1.0, 12.0)
