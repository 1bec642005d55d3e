from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError
from django.utils import timezone

from usage import partitions
from usage.models import UsageRecord


class Command(BaseCommand):
    help = (
        "Delete raw usage records older than --days (rollups are kept); prints what was deleted. On PostgreSQL "
        "whole month partitions are dropped, so the month the cut-off falls in is kept entirely."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None,
                            help="Keep this many days of raw records (default: USAGE_RETENTION_DAYS).")
        parser.add_argument("--batch", type=int, default=10_000)
        parser.add_argument("--dry-run", action="store_true", help="Print what would be deleted; change nothing.")

    def handle(self, *args, **opts):
        days = opts["days"] if opts["days"] is not None else settings.USAGE_RETENTION_DAYS
        if not days:
            raise CommandError("give --days or set USAGE_RETENTION_DAYS")
        if days < 1:
            raise CommandError("--days must be at least 1")
        cutoff = timezone.now() - timedelta(days=days)
        try:
            if partitions.usage_partitioned():
                self._prune_partitions(cutoff, days, opts["batch"], opts["dry_run"])
            else:
                self._prune_rows(cutoff, opts["batch"], opts["dry_run"])
        except OperationalError as exc:  # lock_timeout: a long query holds the table; the next run will do
            raise CommandError(f"usage table busy, nothing more pruned: {exc}".strip()) from None

    def _prune_rows(self, cutoff, batch: int, dry_run: bool) -> None:
        old = UsageRecord.objects.filter(created_at__lt=cutoff)
        if dry_run:
            self.stdout.write(f"would delete {old.count()} usage records older than {cutoff:%Y-%m-%d %H:%M} UTC")
            return
        deleted = 0
        while True:
            # In batches, so SQLite's writer lock is never held for long while the gateway serves.
            ids = list(old.values_list("id", flat=True)[:batch])
            if not ids:
                break
            deleted += UsageRecord.objects.filter(id__in=ids).delete()[0]
        self.stdout.write(f"deleted {deleted} usage records older than {cutoff:%Y-%m-%d %H:%M} UTC")

    def _prune_partitions(self, cutoff, days: int, batch: int, dry_run: bool) -> None:
        # Retention by whole months: a month goes once all of it is past the cut-off.
        boundary = partitions.month_start(cutoff)
        verb = "would drop" if dry_run else "dropped"
        dropped = partitions.usage_partitions_drop(before=boundary, dry_run=dry_run)
        for part, rows in dropped:
            self.stdout.write(f"{verb} {part.name} ({part.start:%Y-%m-%d} to {part.end:%Y-%m-%d}, {rows} rows)")
        # Rows a back-fill put in DEFAULT (months without a partition) follow the same rule.
        from_default = partitions.usage_default_prune(before=boundary, batch=batch, dry_run=dry_run)
        created = [] if dry_run else partitions.usage_partitions_ensure()
        total = sum(rows for _part, rows in dropped) + from_default
        self.stdout.write(
            f"{'would delete' if dry_run else 'deleted'} {total} usage records older than {boundary:%Y-%m-%d %H:%M} "
            f"UTC (whole months before the {days}-day cut-off): {len(dropped)} month partition(s), {from_default} "
            f"rows of the default partition"
            + (f"; created {', '.join(created)}" if created else "")
        )
