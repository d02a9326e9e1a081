"""``tempo-lab`` speaks tempo_lab: every expected failure is one line and a non-zero exit, never a traceback.

Each case runs the real command in a subprocess, as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import HANG_S

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny-random", "--no-progress"]


def tempo_lab(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tempo_lab.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)


def one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("tempo-lab: ")]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_folder_that_cannot_be_written_is_refused_before_any_model_work(tmp_path):
    if os.geteuid() == 0:  # root writes through permissions: use a place no one can create folders in
        target = "/proc/self/tempo-results"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "study")
    done = tempo_lab("study", "--results", target, "--model", "no/such/model")
    # refused before any model work: loading that model first would have failed with "no model folder"
    line = one_line_error(done, "cannot write results")
    assert "no model folder" not in line


def test_results_naming_an_existing_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    one_line_error(tempo_lab("study", "--results", str(tmp_path / "f"), *TINY), "is a file")


def test_a_model_path_that_does_not_exist_is_one_line(tmp_path):
    one_line_error(
        tempo_lab("study", "--results", str(tmp_path / "s"), "--model", "./no/such/model"), "no model folder"
    )


def test_a_binary_prompt_file_is_named(tmp_path):
    (tmp_path / "p.txt").write_bytes(b"fine\n" + "\U0001f600".encode()[:2] + b"\xff\n")
    line = one_line_error(
        tempo_lab("study", "--results", str(tmp_path / "s"), "--prompts", str(tmp_path / "p.txt"), *TINY),
        "is not UTF-8 text",
    )
    assert str(tmp_path / "p.txt") in line


def test_a_bad_limit_names_limit(tmp_path):
    one_line_error(tempo_lab("study", "--results", str(tmp_path / "s"), "--limit", "0", *TINY), "--limit")


def test_a_limit_past_the_set_runs_all_of_it_and_says_so(tmp_path):
    (tmp_path / "p.txt").write_text("The cat sat\nOnce upon a time\nA dog ran\n")
    args = ["--results", str(tmp_path / "s"), "--prompts", str(tmp_path / "p.txt"), "--limit", "100000"]
    done = tempo_lab("study", *args, "--phenomena", "retroactive", *TINY)
    assert done.returncode == 0, done.stderr
    assert "--limit 100000 is more than the 3 prompts: running all of them" in done.stderr
    assert "retroactive: 15 rows" in done.stdout  # 3 prompts x 5 gaps


def default_sigint() -> None:
    """Give SIGINT its default disposition in a child about to exec (a background job inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_says_what_was_kept_and_how_to_resume_and_a_second_writer_is_refused(tmp_path):
    """The study is stopped (SIGSTOP) once it has written three parts, so that however fast or slow the CPU,
    it is still running, and still holds its folder, while the second writer is refused and the interrupt is
    sent; SIGCONT then lets it take the SIGINT."""
    folder = tmp_path / "s"
    cmd = [sys.executable, "-m", "tempo_lab.cli", "study", "--results", str(folder), "--batch-size", "2",
           *TINY]  # fmt: skip
    # A shell started this suite's ancestors in the background leaves SIGINT ignored, and an ignored signal
    # stays ignored across exec (Python then installs no KeyboardInterrupt handler): the child gets the
    # default disposition a terminal's foreground process has, which is what Ctrl-C reaches.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + HANG_S
        while len(list(folder.glob("*/part-*.parquet"))) < 3:
            assert proc.poll() is None, f"the study exited before writing three parts: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"the study wrote no parts in {HANG_S:.0f} s: a hang"
            time.sleep(0.05)
        proc.send_signal(signal.SIGSTOP)
        assert proc.poll() is None, "the study finished before three parts of 302 prompts were counted"
        second = tempo_lab("study", "--results", str(folder), "--batch-size", "2", *TINY)
        one_line_error(second, f"being written by pid {proc.pid}")
        proc.send_signal(signal.SIGINT)  # pending until the process runs again
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=HANG_S)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted; the" in err and "run the same command again to resume" in err
    assert not (folder / ".writer.lock").exists()  # released on the way out


def test_an_unknown_flag_is_named_before_a_missing_argument():
    done = tempo_lab("study", "--bogus", "3")
    assert done.returncode == 2 and "unrecognised argument: --bogus" in done.stderr, done.stderr
    assert "required" not in done.stderr


def test_an_empty_results_folder_is_refused():
    one_line_error(tempo_lab("study", "--results", "", *TINY), "--results must name a folder")


def test_a_model_that_does_not_load_leaves_no_folder_behind(tmp_path):
    target = tmp_path / "new" / "study"
    one_line_error(tempo_lab("study", "--results", str(target), "--model", str(tmp_path / "nowhere")),
                   "no model folder")  # fmt: skip
    assert not target.exists()
