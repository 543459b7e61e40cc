"""One writer per output (core/locking.py): flock beside the output, refused while held, freed by death."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.locking import OutputLock

ROOT = Path(__file__).resolve().parents[2]

HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from core.locking import OutputLock
    lock = OutputLock(Path(sys.argv[1])).acquire()
    print("held", flush=True)
    sys.stdin.readline()
""")


def test_lock_file_of_a_file_target_is_dot_name_dot_lock_beside_it(tmp_path):
    target = tmp_path / "out" / "results.jsonl"
    lock = OutputLock(target)
    assert lock.path == tmp_path / "out" / ".results.jsonl.lock"
    with lock:
        assert lock.path.is_file()  # the missing parent directory is made
        assert not target.exists()  # the output itself is not touched


def test_lock_file_of_a_directory_target_is_autoact_lock_inside_it(tmp_path):
    lock = OutputLock(tmp_path)
    assert lock.path == tmp_path / ".autoact.lock"
    with lock:
        assert (tmp_path / ".autoact.lock").is_file()


def test_lock_file_records_who_holds_it(tmp_path):
    with OutputLock(tmp_path / "data.jsonl"):
        info = json.loads((tmp_path / ".data.jsonl.lock").read_text())
    assert info["pid"] == os.getpid()
    assert set(info) == {"pid", "host", "command", "since"}
    assert isinstance(info["command"], list)


def test_a_second_lock_on_the_same_output_is_refused_while_the_first_is_held(tmp_path):
    """flock is per open file: a second descriptor, even in this process, is refused at once."""
    target = tmp_path / "results.jsonl"
    with OutputLock(target, "results file"), pytest.raises(ConfigError) as info:
        OutputLock(target, "results file").acquire()
    message = str(info.value)
    assert message.startswith(f"{target} is in use by another run (pid {os.getpid()} on ")
    assert "write this results file elsewhere" in message


def test_the_lock_is_released_after_the_with_block(tmp_path):
    target = tmp_path / "results.jsonl"
    with OutputLock(target):
        pass
    with OutputLock(target) as again:  # taken again at once
        assert again.path.exists()
    lock = OutputLock(target).acquire()
    lock.release()
    lock.release()  # releasing twice is harmless
    OutputLock(target).acquire().release()


def test_the_lock_is_released_when_the_with_block_raises(tmp_path):
    target = tmp_path / "results.jsonl"
    with pytest.raises(ValueError), OutputLock(target):
        raise ValueError("boom")
    OutputLock(target).acquire().release()


def test_different_outputs_in_one_directory_lock_independently(tmp_path):
    with OutputLock(tmp_path / "a.jsonl"), OutputLock(tmp_path / "b.jsonl"), pytest.raises(ConfigError):
        OutputLock(tmp_path / "a.jsonl").acquire()


def test_a_lock_held_by_another_process_is_refused_and_freed_when_it_is_killed(tmp_path):
    """The message names the holder's pid; after `kill -9` the stale file does not keep the lock."""
    target = tmp_path / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError) as info:
            OutputLock(target).acquire()
        assert f"{target} is in use by another run (pid {child.pid} on " in str(info.value)
    finally:
        child.kill()
        child.wait(timeout=10)
        child.stdin.close()
        child.stdout.close()
    assert (tmp_path / ".results.jsonl.lock").exists()  # left behind, but not held
    with OutputLock(target) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_refusal_without_readable_holder_info_still_names_the_target(tmp_path):
    """A lock file whose contents are not the holder record gives a message without the holder part."""
    import fcntl
    target = tmp_path / "results.jsonl"
    lock_path = tmp_path / ".results.jsonl.lock"
    lock_path.write_text("not json")
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConfigError) as info:
            OutputLock(target).acquire()
        assert str(info.value).startswith(f"{target} is in use by another run: wait for it to finish")
    finally:
        os.close(fd)
