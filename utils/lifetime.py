"""Child processes that die with their parent, however the parent ends.

``die_with_parent()`` asks the Linux kernel (prctl PR_SET_PDEATHSIG) to send SIGKILL to the
calling process when the thread that created it exits; a data-loader worker calls it first
thing, so a trainer killed with SIGKILL or SIGTERM leaves no worker behind (they used to stay
alive for minutes, holding hundreds of MB each). Where prctl does not exist (macOS, Windows)
it does nothing and says so by returning False.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int | None = None, sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent goes; True when set.

    ``parent_pid``: the parent's pid as the parent knew it. If the parent is already gone when
    this runs (the race prctl cannot close by itself: this process has been re-parented), the
    process ends itself at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os.kill(os.getpid(), sig)
    return True
