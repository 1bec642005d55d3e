from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from usage.keys import api_key_create
from usage.models import Team


class Command(BaseCommand):
    help = "Create an API key; the secret is printed alone on the last line and never again."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--team")
        parser.add_argument("--models", help="Comma-separated public model names (default: all).")
        parser.add_argument("--expires", help="ISO date or date-time.")
        parser.add_argument("--metadata", action="append", default=[], help="k=v, repeatable.")

    def handle(self, *args, **opts):
        team = Team.objects.get_or_create(name=opts["team"])[0] if opts["team"] else None
        expires = None
        if opts["expires"]:
            try:
                expires = datetime.fromisoformat(opts["expires"])
            except ValueError:
                raise CommandError("--expires must be an ISO date such as 2027-01-31") from None
            if len(opts["expires"]) <= 10:
                expires = datetime.combine(expires.date(), time.max)
            if timezone.is_naive(expires):
                expires = timezone.make_aware(expires)
        metadata = {}
        for item in opts["metadata"]:
            if "=" not in item:
                raise CommandError(f"--metadata takes k=v, got {item!r}")
            k, v = item.split("=", 1)
            metadata[k.strip()] = v.strip()
        models = [m.strip() for m in (opts["models"] or "").split(",") if m.strip()]
        key, secret = api_key_create(
            name=opts["name"], team=team, allowed_models=models, expires_at=expires, metadata=metadata
        )
        self.stderr.write(f"created key {key.name} ({key.prefix}…); the secret follows and is not stored:")
        self.stdout.write(secret)
