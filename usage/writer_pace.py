"""The usage writer process runs on idle CPU while it keeps up, and competes for CPU only when it falls behind.

At nice 10 a writer batch still delayed requests: when a worker woke while the writer held the CPU it waited
for the writer's time slice, and at one request at a time that was most of the gateway's tail beyond the
floor's (docs/benchmarks.md, fifth pass: c=1 p99 3.79 → 3.18 ms with the writer on SCHED_IDLE). A SCHED_IDLE
thread gets the CPU only when nothing else wants it, so under sustained full load it would starve and the
usage stream would grow without bound; hence the pace: once the oldest record not yet written is older than
CATCH_UP_S the writer goes back to its nice level until it is within RELAX_S again. Records stay durable in
the stream meanwhile. Measured at 64 concurrent calls with the writer on the worker's CPU (saturated): the oldest
unwritten record was 0.5 to 6 s old with CATCH_UP_S at 2 s, the stream empty a second after the load ended.

Linux only. An unprivileged process cannot leave SCHED_IDLE unless RLIMIT_NICE allows its nice level (or it
has CAP_SYS_NICE); where it could not come back, the writer stays at its nice level throughout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("gateway.usage")

CATCH_UP_S = 1.0
RELAX_S = 0.5
CHECK_EVERY_S = 0.5


def idle_policy_usable() -> bool:
    """Can a thread of this process go to SCHED_IDLE and come back? Tried on a thread of its own."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    outcome: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=probe, name="sched-idle-probe")
    thread.start()
    thread.join()
    return outcome == [True]


def set_idle(idle: bool) -> None:
    """Every thread of this process to SCHED_IDLE, or back to SCHED_OTHER (its nice level is kept). Threads
    started later inherit the policy of the thread that starts them."""
    policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setscheduler(int(tid), policy, os.sched_param(0))
        except ProcessLookupError:
            pass  # the thread ended meanwhile


async def stream_lag(client, stream: str) -> float:
    """Seconds since the oldest entry still in the usage stream was added (0 when it is empty): the writers
    delete what they have written, and an entry's id starts with its time in milliseconds."""
    entries = await client.xrange(stream, "-", "+", count=1)
    if not entries:
        return 0.0
    entry_id = entries[0][0]
    added_ms = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-", 1)[0])
    return max(0.0, time.time() - added_ms / 1000)


async def keep_pace(lag: Callable[[], Awaitable[float]], *, switch: Callable[[bool], None] = set_idle,
                    every: float = CHECK_EVERY_S) -> None:
    """Idle policy while the stream's lag stays under CATCH_UP_S; the nice level until it is back under
    RELAX_S. Runs until cancelled."""
    idle = True
    switch(True)
    while True:
        await asyncio.sleep(every)
        try:
            behind = await lag()
        except Exception as exc:  # Redis away: the consumer reports it; keep the current policy
            log.debug("usage writer pace: no lag reading (%s)", exc)
            continue
        if idle and behind > CATCH_UP_S:
            log.info("usage writer %.1f s behind: competing for CPU until it has caught up", behind)
            switch(False)
            idle = False
        elif not idle and behind < RELAX_S:
            switch(True)
            idle = True
