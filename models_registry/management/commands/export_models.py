from django.core.management.base import BaseCommand

from models_registry.services import models_export


class Command(BaseCommand):
    help = "Write the catalogue as a seed-gateway models.yaml (to stdout, or --output FILE)."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o")

    def handle(self, *args, **opts):
        text = models_export()
        if opts["output"]:
            with open(opts["output"], "w") as fh:
                fh.write(text)
            self.stderr.write(f"wrote {opts['output']}")
        else:
            self.stdout.write(text, ending="")
