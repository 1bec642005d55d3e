from django.core.management.base import BaseCommand

from models_registry.services import models_export, providers_export


class Command(BaseCommand):
    help = (
        "Write the catalogue as a seed-gateway models.yaml, or (--format openai-gateway) its OpenAI-compatible "
        "providers as a CONFIG JSON (to stdout, or --output FILE)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o")
        parser.add_argument("--format", choices=("models-yaml", "openai-gateway"), default="models-yaml")

    def handle(self, *args, **opts):
        text = providers_export() if opts["format"] == "openai-gateway" else models_export()
        if opts["output"]:
            with open(opts["output"], "w") as fh:
                fh.write(text)
            self.stderr.write(f"wrote {opts['output']}")
        else:
            self.stdout.write(text, ending="")
