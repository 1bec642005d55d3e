"""`manage.py write_usage`: write the Redis usage stream to the database until SIGTERM (usage/writer_process.py)."""

from __future__ import annotations

import asyncio
import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

PARENT_CHECK_S = 1.0


class Command(BaseCommand):
    help = "Write the usage stream to the database (the writer process manage.py serve runs beside its workers)."

    def add_arguments(self, parser):
        parser.add_argument("--nice", type=int, default=0, help="Lower this process's priority by this much.")
        parser.add_argument("--parent-pid", type=int, default=None,
                            help="Stop when this process (serve) is gone, even if it was killed outright.")
        parser.add_argument("--pace", action="store_true",
                            help="Use idle CPU only while keeping up with the stream (usage/writer_pace.py).")

    def handle(self, *args, **opts):
        if not settings.REDIS_URL:
            raise CommandError("write_usage reads the Redis usage stream: set REDIS_URL")
        if opts["nice"]:
            os.nice(opts["nice"])
        asyncio.run(_run(opts["parent_pid"], pace=opts["pace"]))


async def _run(parent: int | None, *, pace: bool = False) -> None:
    from usage import writer_pace
    from usage.recorder import recorder, stream_name

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if parent:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches serve too; serve stops this with SIGTERM
    else:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    watcher = loop.create_task(_watch_parent(parent, stop)) if parent else None
    pacer = None
    if pace and writer_pace.idle_policy_usable():
        async def lag() -> float:
            return await writer_pace.stream_lag(recorder._client(), stream_name())

        pacer = loop.create_task(writer_pace.keep_pace(lag))
        loop.create_task(stop.wait()).add_done_callback(lambda _done: pacer.cancel())  # not beside the last drain
    try:
        await recorder.consume_until(stop)
    finally:
        for task in (watcher, pacer):
            if task is not None:
                task.cancel()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:  # an orphan is adopted by another process (also if it was before we looked)
        await asyncio.sleep(PARENT_CHECK_S)
    stop.set()
