from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.context import acting_as, command_actor
from models_registry.discovery import DiscoveryError, discover_models, discovery_apply
from models_registry.models import CredentialProfile
from models_registry.services import ImportError_


class Command(BaseCommand):
    help = "List the models OCI offers in a region (ListModels, ListEndpoints); --apply imports them."

    def add_arguments(self, parser):
        parser.add_argument("--region", default="", help="Default: OCI_REGION.")
        parser.add_argument("--compartment", default="", help="Compartment OCID. Default: OCI_COMPARTMENT.")
        parser.add_argument("--credential", help="Credential profile name (default: the default profile).")
        parser.add_argument("--apply", action="store_true", help="Import what was found (upsert by public name).")
        parser.add_argument("--only", action="append", default=None, metavar="NAME",
                            help="With --apply, import only this public name (repeatable).")
        parser.add_argument("--no-fallback", action="store_true",
                            help="Fail instead of showing the shipped fallback list when OCI cannot be asked.")

    def handle(self, *args, **opts):
        credential = None
        if opts["credential"]:
            credential = CredentialProfile.objects.filter(name=opts["credential"]).first()
            if credential is None:
                names = ", ".join(CredentialProfile.objects.values_list("name", flat=True)) or "none defined"
                raise CommandError(f"no credential profile {opts['credential']!r} (known: {names})")
        region = opts["region"] or settings.OCI_REGION
        compartment = opts["compartment"] or settings.OCI_COMPARTMENT
        if not region or not compartment:
            raise CommandError("give --region and --compartment (or set OCI_REGION and OCI_COMPARTMENT)")
        try:
            result = discover_models(region=region, compartment_id=compartment, credential=credential,
                                     fallback=not opts["no_fallback"])
        except DiscoveryError as exc:
            raise CommandError(f"discovery failed: {exc}") from None
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        width = max((len(m.name) for m in result.models), default=10)
        for m in result.models:
            target = m.endpoint_id or m.model_id
            self.stdout.write(f"{m.name:<{width}}  {m.kind:<9}  {m.capability:<15}  {m.api_format or '-':<8}  {target}")
        self.stdout.write(f"found {len(result.models)} model(s) in {region} (source: {result.source})")
        if opts["apply"]:
            with acting_as(command_actor("discover_models")):
                try:
                    summary = discovery_apply(result, names=opts["only"])
                except ImportError_ as exc:
                    raise CommandError(str(exc)) from None
            self.stdout.write(f"imported: {summary}")
