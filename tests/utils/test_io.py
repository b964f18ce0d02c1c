"""utils/io.py: a refused write is one line naming the file and the cause, keeps the previous
file and leaves no temporary; check_writable asks first and creates nothing."""
from __future__ import annotations

import errno

import pytest

from tests.oserrors import disk_full
from utils.errors import ToonFaceError
from utils.io import WriteError, append_text, atomic_write_bytes, check_writable, make_folder


def test_full_disk_keeps_the_previous_file_and_says_so(tmp_path, monkeypatch):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"old")
    disk_full(monkeypatch)
    with pytest.raises(WriteError) as e:
        atomic_write_bytes(target, b"new" * 1000)
    assert str(e.value) == f"cannot write {target}: No space left on device"
    assert isinstance(e.value, ToonFaceError) and isinstance(e.value, OSError)
    assert e.value.errno == errno.ENOSPC and e.value.exit_code == 2
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


def test_a_file_where_a_folder_should_be_is_a_write_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError, match=r"cannot write .*f/a\.bin: (File exists|Not a directory)"):
        atomic_write_bytes(tmp_path / "f" / "a.bin", b"1")
    with pytest.raises(WriteError, match="Not a directory"):
        append_text(tmp_path / "f" / "log.txt", "line\n")


def test_check_writable_names_the_problem_and_creates_nothing(tmp_path):
    check_writable(tmp_path / "new" / "deeper", "--out", folder=True)
    check_writable(tmp_path / "new" / "x.onnx", "--onnx")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ToonFaceError, match="--out .*file: is a file, not a folder"):
        check_writable(tmp_path / "file", "--out", folder=True)
    with pytest.raises(ToonFaceError, match="--onnx .*: is a folder, not a file"):
        check_writable(tmp_path, "--onnx")
    with pytest.raises(ToonFaceError, match="is not a folder"):
        check_writable(tmp_path / "file" / "x.onnx", "--onnx")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(ToonFaceError, match=r"--out .*locked/o: cannot write in .*locked \(it is read-only"):
            check_writable(locked / "o", "--out", folder=True)
    finally:
        locked.chmod(0o755)
    with pytest.raises(ToonFaceError, match=r"--out .*file/sub: cannot create it \((File exists|Not a directory)\)"):
        make_folder(tmp_path / "file" / "sub", "--out")
