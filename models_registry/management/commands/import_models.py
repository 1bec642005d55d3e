from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from models_registry.services import FORMATS, ImportError_, models_import


class Command(BaseCommand):
    help = (
        "Create or update public models from a seed gateway's models.yaml, or (--format openai-gateway) the "
        "generic OpenAI gateway's CONFIG JSON of namespaced providers (upsert by public name)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--prune", action="store_true", help="Disable entries from this file no longer in it.")
        parser.add_argument("--source", help="Source label for --prune (default: the file name).")
        parser.add_argument("--format", choices=sorted(FORMATS), default="models-yaml",
                            help="models-yaml (default): the OCI seed's models.yaml; openai-gateway: a CONFIG JSON.")

    def handle(self, *args, **opts):
        path = Path(opts["file"])
        try:
            text = path.read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None
        try:
            summary = models_import(text=text, source=opts["source"] or path.name, prune=opts["prune"],
                                    format=opts["format"])
        except ImportError_ as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(str(summary))
