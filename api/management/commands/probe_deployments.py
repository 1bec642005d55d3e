import json

from django.core.management.base import BaseCommand, CommandError

from api.probes import PROBE_TIMEOUT_S, deployments_to_probe, probe_many_sync


class Command(BaseCommand):
    help = ("Send one tiny request to each enabled deployment (or the named ones) through the gateway's upstream "
            "path and show the result. Not billed to any API key; exits non-zero when a probe fails.")

    def add_arguments(self, parser):
        parser.add_argument("--deployment", action="append", default=[], metavar="NAME",
                            help="probe this deployment (enabled or not); repeat for several")
        parser.add_argument("--json", action="store_true", help="print the results as a JSON list")
        parser.add_argument("--timeout", type=float, default=PROBE_TIMEOUT_S, help="seconds per probe")

    def handle(self, *args, **opts):
        names = opts["deployment"]
        specs = deployments_to_probe(names=names or None)
        missing = sorted(set(names) - {d.name for d in specs})
        if missing:
            raise CommandError(f"no deployment named {', '.join(missing)}")
        if not specs:
            self.stdout.write("no enabled deployment to probe")
            return
        results = probe_many_sync(specs, timeout=opts["timeout"])
        if opts["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in results], indent=2))
        else:
            for r in results:
                outcome = "ok" if r.ok else f"error {r.status or '-'}"
                line = (f"{r.deployment:32} {r.kind:12} {r.region or '-':16} {r.call:10} {outcome:10} "
                        f"{r.latency_ms:6} ms")
                self.stdout.write(f"{line}  {r.error}" if r.error else line)
        failed = [r for r in results if not r.ok]
        if failed:
            names = ", ".join(r.deployment for r in failed)
            raise CommandError(f"{len(failed)} of {len(results)} probes failed: {names}")
        if not opts["json"]:
            self.stdout.write(f"all {len(results)} probes ok")
