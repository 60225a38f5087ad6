"""``loanbus demo`` as a user runs it in a terminal: Ctrl-C, two demos in one domain, its figures."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.cli import LOANBUS, REPO, _env
from tests.reliability import wait_for

CONNECTED = "producer and consumer connected"


class Demo:
    """``loanbus demo ARGS`` in a process group of its own, as a shell runs a foreground job."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*LOANBUS, "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env({"COLUMNS": "120"}),
            cwd=REPO,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(line)

    def wait_line(self, text: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self._queue.empty():
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; output so far:\n" + "\n".join(self.lines))

    def ctrl_c(self) -> None:
        """SIGINT to the whole process group, as a terminal sends it."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def finish(self, timeout: float = 90.0) -> tuple[int, str, str]:
        """Wait for the exit; (status, stdout, stderr)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError("loanbus demo did not end; output:\n" + "\n".join(self.lines)) from None
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        self._reader.join(30)  # it reads stdout to its end
        return self.proc.returncode, "\n".join(self.lines), err

    def kill(self) -> None:
        """End whatever is left of the process group: SIGTERM first, so pools are unlinked."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _group_alive(self.proc.pid):
                self.proc.poll()
                time.sleep(0.05)
        self.proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def figure(out: str, name: str) -> int:
    found = re.search(rf"│ {re.escape(name)}\s*│\s*([\d,]+)", out)
    assert found is not None, f"no row {name!r} in:\n{out}"
    return int(found[1].replace(",", ""))


def _shm(prefix: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if prefix in n]


def test_ctrl_c_stops_the_demo_quietly_prints_the_figures_so_far_and_exits_130(
    domain_id: int, shm_prefix: str
) -> None:
    demo = Demo("--seconds", "600", "--domain", str(domain_id))
    try:
        demo.wait_line(CONNECTED)
        demo.ctrl_c()
        status, out, err = demo.finish()
    finally:
        demo.kill()
    assert status == 130, out + err
    assert err == ""  # no traceback, no KeyboardInterrupt, nothing from the children
    assert "interrupted after" in out and "the figures so far" in out
    written, taken = figure(out, "frames written"), figure(out, "frames taken")
    assert written > 0 and taken == written  # reliable: the consumer took every frame written
    assert figure(out, "inconsistent samples") == 0
    assert _shm(shm_prefix) == []  # both children closed their pools


def test_two_demos_in_one_domain_each_take_only_their_own_frames(domain_id: int) -> None:
    demos = [Demo("--seconds", "600", "--domain", str(domain_id)) for _ in range(2)]
    try:
        topics = [
            re.search(r"topic (\S+)", d.wait_line("(each run has a topic of its own)"))[1] for d in demos
        ]  # type: ignore[index]
        for d in demos:
            d.wait_line(CONNECTED)  # both stream at once from here on
        for d in demos:
            d.ctrl_c()
        results = [d.finish() for d in demos]
    finally:
        for d in demos:
            d.kill()
    assert topics[0] != topics[1]
    for status, out, err in results:
        assert status == 130 and err == "", out + err
        written = figure(out, "frames written")
        assert written > 0 and figure(out, "frames taken") == written, out  # not twice as many


def test_the_demo_names_what_its_slot_reuses_count_in_each_mode(domain_id: int) -> None:
    reliable = Demo("--seconds", "0.5", "--domain", str(domain_id))
    status, out, err = reliable.finish()
    assert status == 0, err
    assert figure(out, "slots reused after the consumer returned them") > 0
    assert "reuses a slot only after the consumer returned its frame" in out
    assert figure(out, "frames written, never taken") == 0

    best_effort = Demo("--seconds", "0.5", "--best-effort", "--domain", str(domain_id))
    status, out, err = best_effort.finish()
    assert status == 0, err
    assert figure(out, "slots reused, overwriting an older frame") > 0
    assert "whether or not its frame was taken" in out
    assert figure(out, "frames written, never taken") == figure(out, "frames written") - figure(
        out, "frames taken"
    )


def _stat(pid: int) -> list[str] | None:
    """State, parent pid, ... of a live (not zombie) process; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields


def _children(pid: int) -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit() and (f := _stat(int(e))) and int(f[1]) == pid]


def test_the_children_of_a_demo_killed_outright_stop_and_leave_nothing_in_dev_shm(
    domain_id: int, shm_prefix: str
) -> None:
    demo = Demo("--seconds", "600", "--domain", str(domain_id))
    try:
        demo.wait_line(CONNECTED)
        children = _children(demo.proc.pid)
        assert len(children) >= 2  # the producer and the consumer (and the resource tracker)
        os.kill(demo.proc.pid, signal.SIGKILL)
        demo.proc.wait(30)
        wait_for(lambda: all(_stat(c) is None for c in children), 60, "the children to end")
    finally:
        demo.kill()
    wait_for(lambda: _shm(shm_prefix) == [], 30, "the pool to be unlinked")
