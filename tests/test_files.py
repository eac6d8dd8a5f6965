"""hrgraph.files: atomic writes that keep modes and links, write through devices and FIFOs, and clean up."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from hrgraph.errors import OutputError
from hrgraph.files import MAX_FILENAME_BYTES, atomic_dir, atomic_open, safe_filename, write_atomic


def _mknod(path: Path, major: int, minor: int) -> Path:
    """A character device in the test's own folder (never the system's /dev/null or /dev/full)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    except (PermissionError, OSError) as err:
        pytest.skip(f"cannot create a device node here: {err}")
    return path


def test_new_file_gets_the_umask_mode_and_no_temporary_is_left(tmp_path):
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "out.txt", "text")
    finally:
        os.umask(umask)
    assert (tmp_path / "out.txt").read_text() == "text"
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_existing_file_keeps_its_mode(tmp_path):
    private = tmp_path / "secret.yaml"
    private.write_text("old")
    private.chmod(0o600)
    write_atomic(private, "new")
    assert private.read_text() == "new"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_symlink_is_written_through_and_kept(tmp_path):
    target = tmp_path / "real.yaml"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.yaml"
    link.symlink_to(tmp_path / "made.yaml")
    write_atomic(link, "new")
    assert link.is_symlink()
    assert (tmp_path / "made.yaml").read_text() == "new"


def test_device_node_is_written_through_not_replaced(tmp_path):
    null = _mknod(tmp_path / "null", 1, 3)
    write_atomic(null, b"x" * 10_000)
    assert stat.S_ISCHR(null.stat().st_mode)  # still the device, not a regular file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_full_device_fails_with_no_space_left(tmp_path):
    full = _mknod(tmp_path / "full", 1, 7)
    with pytest.raises(OutputError, match="no space left on device") as info:
        write_atomic(full, b"x" * 100_000)
    assert info.value.path == str(full)
    assert stat.S_ISCHR(full.stat().st_mode)


def test_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_atomic(fifo, b"through the pipe")
    reader.join(timeout=30)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_folder_and_missing_folder_are_output_errors_naming_the_user_path(tmp_path):
    with pytest.raises(OutputError, match="is a folder") as info:
        write_atomic(tmp_path, "x")
    assert info.value.path == str(tmp_path)
    missing = tmp_path / "nope" / "out.yaml"
    with pytest.raises(OutputError) as info:
        write_atomic(missing, "x")
    assert str(info.value) == f"{missing}: folder '{missing.parent}' does not exist"  # not the hidden temporary


def test_a_255_byte_name_fits_with_its_temporary(tmp_path):
    name = safe_filename("n" * 1000, ".yaml")
    assert len(name.encode()) == MAX_FILENAME_BYTES
    write_atomic(tmp_path / name, "x")
    assert [p.name for p in tmp_path.iterdir()] == [name]


class _InterruptedFile:
    """A real file whose third write is interrupted, as Ctrl-C would interrupt torch.save."""

    def __init__(self, fh):
        self._fh, self.writes = fh, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 3:
            raise KeyboardInterrupt
        return self._fh.write(data)

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


@pytest.fixture
def interrupted_writes(monkeypatch):
    real = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: _InterruptedFile(real(*a, **k)))


def test_interrupt_inside_torch_save_is_a_keyboard_interrupt_and_leaves_nothing(tmp_path, interrupted_writes):
    torch = pytest.importorskip("torch")
    out = tmp_path / "model.pt"
    # torch.save's C++ writer turns the KeyboardInterrupt into a RuntimeError; atomic_open raises the original.
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(out) as fh:
            torch.save({"w": torch.zeros(100_000)}, fh)
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_writes_all_or_nothing(tmp_path):
    out = tmp_path / "family"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as folder:
            write_atomic(folder / "a.yaml", "a")
            raise RuntimeError("the second file fails")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with atomic_dir(out) as folder:
        write_atomic(folder / "a.yaml", "a")
    assert sorted(p.name for p in out.iterdir()) == ["a.yaml", "keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["family"]


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        with atomic_dir(tmp_path / "file"):
            pass


@pytest.mark.parametrize(
    "name, expected",
    [
        ("../escaped", "_._escaped.yaml"),
        ("/etc/passwd", "_etc_passwd.yaml"),
        ("a\\b", "a_b.yaml"),
        (".hidden", "_hidden.yaml"),
        ("line\nbreak", "line_break.yaml"),
        ("", "_.yaml"),
        ("résumé-no-a-b", "résumé-no-a-b.yaml"),
    ],
)
def test_safe_filename_stays_in_its_folder(name, expected):
    assert safe_filename(name, ".yaml") == expected


def test_safe_filename_keeps_long_names_apart():
    a, b = safe_filename("x" * 300 + "a", ".yaml"), safe_filename("x" * 300 + "b", ".yaml")
    assert a != b
    assert len(a.encode()) <= MAX_FILENAME_BYTES and len(safe_filename("é" * 300).encode()) <= MAX_FILENAME_BYTES


# -- interrupts at the command line -----------------------------------------------------------------

TINY = """\
name: tiny
input: {channels: 3, height: 16, width: 16}
nodes:
  - {id: stem, kind: conv, channels: 8}
  - {id: stage1, kind: basic, channels: 64, depth: 2}
  - {id: head, kind: classifier, classes: 4}
"""


def test_ctrl_c_during_torch_save_says_interrupted_and_exits_130(tmp_path, interrupted_writes):
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from hrgraph.cli.main import main

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    result = CliRunner().invoke(main, ["compile", str(spec), "-o", str(tmp_path / "model.pt")])
    assert result.exit_code == 130, result.output
    assert result.stderr == "interrupted\n"
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.yaml"]


# A compile whose checkpoint is written slowly, so that a signal surely lands inside torch.save.
SLOW_SAVE = """
import os, sys, time
real = os.fdopen
class Slow:
    def __init__(self, fh): self._fh = fh
    def write(self, data):
        time.sleep(0.05)
        return self._fh.write(data)
    def __getattr__(self, name): return getattr(self._fh, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self._fh.close()
os.fdopen = lambda *a, **k: Slow(real(*a, **k))
from hrgraph.cli.main import main
main(sys.argv[1:], prog_name="hrgraph")
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, message", [(15, 143, "terminated"), (2, 130, "interrupted")])
def test_a_signal_during_compile_out_leaves_no_temporary_file(tmp_path, signum, code, message):
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "model.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, "compile", str(spec), "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".model.pt.*")):  # the temporary appears when the save starts
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == message
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.yaml"]
