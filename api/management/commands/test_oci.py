from django.core.management.base import BaseCommand, CommandError

from api.connectivity import probe_all


class Command(BaseCommand):
    help = "Check that every credential profile and region in use can reach OCI Generative AI (one ListModels)."

    def handle(self, *args, **opts):
        results = probe_all()
        for r in results:
            self.stdout.write(f"{r.profile:20} {r.region or '-':16} {r.status:18} {r.latency_ms:6} ms  {r.detail}")
        failed = [r for r in results if r.status != "ok"]
        if failed:
            raise CommandError(f"{len(failed)} of {len(results)} checks failed")
        self.stdout.write(f"all {len(results)} checks ok")
