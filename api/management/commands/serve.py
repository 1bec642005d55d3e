"""`manage.py serve`: the one way the gateway is served (make run, the image, deployment manifests)."""

from __future__ import annotations

import os
import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _exit_normally(signum, frame):
    raise SystemExit(0)


class Command(BaseCommand):
    help = "Serve the gateway with uvicorn (one event loop per worker process)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None)
        parser.add_argument("--port", type=int, default=None)
        parser.add_argument("--workers", type=int, default=None)
        parser.add_argument("--env-file", default=None, help="Read settings from this file (the environment wins).")
        parser.add_argument("--reload", action="store_true", help="Restart on code changes (development).")

    def handle(self, *args, **opts):
        env_file = opts["env_file"]
        if env_file and os.environ.get("GATEWAY_ENV_FILE") != os.path.abspath(env_file):
            if not os.path.exists(env_file):
                raise CommandError(f"--env-file {env_file} does not exist")
            # Settings are read at import: start again with the file in place.
            os.environ["GATEWAY_ENV_FILE"] = os.path.abspath(env_file)
            os.execv(sys.executable, [sys.executable, *sys.argv])

        from api.startup import prepare_to_serve

        try:
            banner = prepare_to_serve()
        except CommandError:
            raise
        except Exception as exc:  # one line, not a traceback, for a start-up that cannot go on
            raise CommandError(str(exc)) from None
        for line in banner:
            self.stdout.write(line)
        self.stdout.flush()

        import uvicorn

        host = opts["host"] or settings.HOST
        port = opts["port"] or settings.PORT
        workers = 1 if opts["reload"] else (opts["workers"] or settings.WORKERS)
        writer = self._start_usage_writer()
        # uvicorn re-raises the SIGTERM it handled once it has shut down: with the default action that kills
        # this process before `finally` stops the writer. Exiting normally instead runs it.
        signal.signal(signal.SIGTERM, _exit_normally)
        self.stdout.write(f"Serving on http://{host}:{port} with {workers} worker(s)")
        self.stdout.flush()
        try:
            uvicorn.run(
                "gateway_project.asgi:application",
                host=host,
                port=port,
                workers=workers,
                reload=opts["reload"],
                lifespan="on",
                access_log=False,
                log_level=settings.LOG_LEVEL.lower(),
                timeout_graceful_shutdown=30,
                proxy_headers=False,  # X-Forwarded-For is honoured per TRUSTED_PROXIES (api/client_ip.py)
                server_header=False,
            )
        finally:
            if writer is not None:
                writer.stop()
            from api.startup import stop_demo_emulator

            stop_demo_emulator()

    def _start_usage_writer(self):
        """With Redis, usage rows are written by a process of their own, not by the workers."""
        from usage import writer_process

        if not writer_process.wanted():
            return None
        writer = writer_process.WriterSupervisor().start()
        os.environ["USAGE_WRITER"] = "process"  # read by each worker's recorder at start-up
        self.stdout.write(f"Usage writer process {writer.pid}")
        return writer
