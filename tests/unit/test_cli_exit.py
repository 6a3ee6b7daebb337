"""The `nightjar` command leaves its process without Python's teardown (pipelines/cli.py:
console), and still does what an exit must: its exit code, its output, its atexit handlers,
and a thread still at work finished first."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _console(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    """`console()` with a `main` of the test's own, in a process of its own."""
    script = tmp_path / "command.py"
    head = (
        "import atexit, sys, threading, time\n"
        "from pathlib import Path\n"
        "import pipelines.cli as cli\n"
        f"out = Path({str(tmp_path)!r})\n"
        "def main():\n"
    )
    tail = "cli.main = main\ncli.console()\n"
    script.write_text(head + textwrap.indent(textwrap.dedent(body), "    ") + tail)
    # Buffered as a night's output is, unless PYTHONUNBUFFERED says otherwise: only the
    # exit's own flush gets a line without its newline out.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=REPO, env=env,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("code", [0, 2, 3])
def test_the_exit_code_the_output_and_the_atexit_handlers_survive(tmp_path, code):
    done = _console(
        tmp_path,
        f"""
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        print("a line", end="")  # left in the buffer: only a flush gets it out
        sys.stderr.write("on stderr")
        return {code}
        """,
    )
    assert done.returncode == code
    assert (done.stdout, done.stderr) == ("a line", "on stderr")
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_thread_still_at_work_is_waited_for(tmp_path):
    done = _console(
        tmp_path,
        """
        def work():
            time.sleep(0.5)
            (out / "finished").write_text("yes")
        threading.Thread(target=work).start()
        return 0
        """,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "finished").read_text() == "yes"
