from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from usage.models import UsageRecord


class Command(BaseCommand):
    help = "Delete raw usage records older than --days (rollups are kept); prints how many were deleted."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, required=True, help="Keep this many days of raw records.")
        parser.add_argument("--batch", type=int, default=10_000)

    def handle(self, *args, **opts):
        if opts["days"] < 1:
            raise CommandError("--days must be at least 1")
        cutoff = timezone.now() - timedelta(days=opts["days"])
        deleted = 0
        while True:
            # In batches, so SQLite's writer lock is never held for long while the gateway serves.
            ids = list(UsageRecord.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[: opts["batch"]])
            if not ids:
                break
            deleted += UsageRecord.objects.filter(id__in=ids).delete()[0]
        self.stdout.write(f"deleted {deleted} usage records older than {cutoff:%Y-%m-%d %H:%M} UTC")
