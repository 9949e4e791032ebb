"""Background work on one machine: the CPU goes to interactive work first.

Linux's autogroup scheduling (``kernel.sched_autogroup_enabled``, on by
default) schedules each *session* as one group and shares the CPU fairly
between groups before it looks at any process's niceness, which then only
ranks a process within its own session. So lowering a process's niceness
alone does not put it behind processes of other sessions (each stack part
is a session of its own): its session's group must be lowered too.
A process that never started a session of its own since boot (PID 1 and
what it runs) is in the kernel's default group: ``/proc/self/autogroup``
reads empty for it.
"""
import os
import random
import sys
import time

AUTOGROUP = "/proc/self/autogroup"
AUTOGROUP_TRIES = 20
#: The face engine's video workers' niceness (local.engine.video reads it; the
#: one-machine stack sets it): named here, where importing costs nothing.
WORKER_NICENESS_ENV = "ROLLCALL_FACE_WORKER_NICENESS"


def run_in_background(nice, own_session=False, autogroup=AUTOGROUP):
    """Add ``nice`` to this process's niceness (what it starts inherits it)
    and lower its session's scheduling group to the same niceness; at the
    lowest niceness (19) also run under ``SCHED_IDLE``.

    ``own_session`` first makes the process a session of its own, so that
    lowering the group does not lower the process that started it (the face
    engine's video workers, below the engine's photo answers). Lowering needs
    no privilege; without autogroups the file is missing and niceness alone
    applies."""
    if nice <= 0:
        return
    os.nice(nice)
    level = os.nice(0)
    # Niceness and policy are each thread's own on Linux: the threads already
    # running (OpenBLAS's pool, a watcher) are lowered too.
    lower_threads(level, idle=level >= 19)
    if own_session:
        try:
            os.setsid()
        except OSError:
            pass        # already a session's leader: its session is its own
    wanted = str(min(19, level))
    # An unprivileged process may change a group's niceness only once every
    # 100 ms or so, machine-wide (EAGAIN otherwise): workers starting together
    # take turns.
    for _ in range(AUTOGROUP_TRIES):
        try:
            with open(autogroup, "w") as handle:
                handle.write(wanted)
            return
        except BlockingIOError:
            time.sleep(random.uniform(0.1, 0.2))
        except OSError:
            return
    print(f"warning: process {os.getpid()}'s scheduling group could not be lowered "
          f"(busy {AUTOGROUP_TRIES} times): it runs at its own niceness only",
          file=sys.stderr, flush=True)


def lower_threads(level, idle):
    """Every thread of this process at niceness ``level`` at least, and under
    ``SCHED_IDLE`` if ``idle``: the lowest niceness still runs in the gaps the
    interactive processes leave and makes each of them wait out a slice when
    it wakes; a SCHED_IDLE thread is preempted the moment a normal one wakes."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < level:
                os.setpriority(os.PRIO_PROCESS, tid, level)
            if idle and hasattr(os, "SCHED_IDLE"):
                os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass        # the thread has ended meanwhile
