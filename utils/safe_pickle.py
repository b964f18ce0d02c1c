"""Reading pickled ``.npy`` files without letting them run code.

A ``.npy`` file whose dtype holds Python objects (white-box's ``vgg19_no_fc.npy`` is one: a
pickled dict ``layer name -> [weight, bias]``) stores a pickle after its header, and
``np.load(allow_pickle=True)`` unpickles it with every global importable: a file can call
``os.system`` or ``open`` while it is being loaded. :func:`load_pickled_npy` unpickles it with
an unpickler that resolves only the globals such a file needs (:data:`ALLOWED_GLOBALS`: numpy's
array and dtype reconstruction and the builtin containers); anything else stops the load before
it is called. Plain numeric ``.npy`` files are read with ``allow_pickle=False``.

The rest of the project loads user files safely by other means: ``torch.load(...,
weights_only=True)`` (models/checkpoint.py, models/vgg.py), ``np.load(allow_pickle=False)``
(the landmark cache), ``yaml.safe_load`` and ``json`` (sweep grids, run folders). The one
exception is by design: an Inception TorchScript file (``test.py --inception``) is a program
and ``torch.jit.load`` runs it; load only files you trust there.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from utils.errors import ToonFaceError

_NUMPY = ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy 1 and numpy 2 names
_BUILTINS = ("builtins", "__builtin__")                       # Python 3 and Python 2 pickles
ALLOWED_GLOBALS = frozenset(
    [(m, n) for m in _NUMPY for n in ("_reconstruct", "scalar")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict")]
    + [(m, n) for m in _BUILTINS for n in ("dict", "list", "tuple", "set", "frozenset", "str",
                                           "unicode", "bytes", "bytearray", "int", "long",
                                           "float", "complex", "bool")])


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a global outside :data:`ALLOWED_GLOBALS`."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and raises :class:`RefusedGlobal`
    for any other global before it is imported or called."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedGlobal(module, name)
        return super().find_class(module, name)


def load_pickled_npy(path: str | os.PathLike, encoding: str = "ASCII", what: str = "a .npy file") -> Any:
    """The array stored in a ``.npy`` file; object arrays are unpickled by
    :class:`RestrictedUnpickler`.

    Args:
        path: the file.
        encoding: how Python 2 ``str`` objects are decoded ("latin1" for files written by
            Python 2 with numpy arrays inside, as np.load's ``encoding``).
        what: what the file should be, for the error message.
    Returns the ndarray (a 0-d object array for a pickled dict: ``.item()`` gives the dict).
    Raises ToonFaceError (one line) when the file cannot be read, is not a ``.npy`` file, or
    its pickle asks for anything but arrays and builtin containers (nothing is run).
    """
    import numpy as np
    from numpy.lib import format as npy_format

    path = Path(path)
    try:
        with open(path, "rb") as f:
            version = npy_format.read_magic(f)
            read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                           else npy_format.read_array_header_2_0)
            _, _, dtype = read_header(f)
            if not dtype.hasobject:
                return np.load(path, allow_pickle=False)
            return RestrictedUnpickler(f, encoding=encoding).load()
    except RefusedGlobal as exc:
        raise ToonFaceError(f"{path}: refused: its pickle asks for {exc.module}.{exc.name}, which "
                            f"{what} never holds (a file that would run code when loaded is not "
                            "loaded)") from None
    except PermissionError as exc:
        raise ToonFaceError(f"{path}: cannot read ({exc.strerror})") from None
    except (OSError, ValueError, EOFError, TypeError, AttributeError, IndexError, KeyError,
            pickle.UnpicklingError) as exc:
        raise ToonFaceError(f"{path}: not a readable {what} ({type(exc).__name__})") from None
