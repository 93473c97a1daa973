"""Children that die with their parent: no django-q2 process outlives its cluster
(docs/architecture.md §7, README "Deployment").

django-q2 forks (``multiprocessing`` "fork" context) the cluster master → the sentinel → the
workers, the monitor and the pusher. Killed with SIGKILL, the master cannot stop them: they
would go on taking work beside a restarted cluster. :func:`children_die_with_parent`, called
once in the master before it forks, makes every process forked from then on in that tree ask
the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``; elsewhere a thread
watching ``os.getppid()`` sends it), so the sentinel dies with the master and the workers with
the sentinel (both take SIGTERM's default action: exit at once). A worker stopped mid-device
leaves a lease that nobody renews; the reaper recovers it.

PR_SET_PDEATHSIG fires when the *thread* that forked exits; django-q2 forks from each
process's main thread, which lives as long as the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_SECONDS = 1.0

_installed = False
_forking_parent = 0  # the pid of the process about to fork, as its child will see it


def children_die_with_parent() -> None:
    """Install the at-fork hooks (once per process; inherited by forked children)."""
    global _installed
    if _installed:
        return
    _installed = True
    os.register_at_fork(before=_remember_parent, after_in_child=_die_with_parent)


def _remember_parent() -> None:
    global _forking_parent
    _forking_parent = os.getpid()


def _die_with_parent() -> None:
    parent = _forking_parent
    if not _set_parent_death_signal(signal.SIGTERM):
        threading.Thread(
            target=_watch_parent, args=(parent,), name="pondops-parent-watch", daemon=True
        ).start()
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _set_parent_death_signal(signum: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %s", ctypes.get_errno())
        return False
    return True


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        threading.Event().wait(WATCH_INTERVAL_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
