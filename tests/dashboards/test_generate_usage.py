"""generate_usage: realistic rows whose rollups (hourly and daily) add up to exactly the raw rows."""

import pytest
from django.core.management import call_command
from django.db.models import Count, Sum

from usage.models import (
    ApiKey,
    UsageDailyKeyRollup,
    UsageDailyModelRollup,
    UsageDailyRollup,
    UsageRecord,
    UsageRollup,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.smoke
def test_generated_usage_adds_up_in_every_rollup(capsys):
    call_command("generate_usage", rows=3000, keys=40, days=30, seed=7, chunk=1000)
    assert "generate_usage: 3000 usage rows for 40 keys over 30 days" in capsys.readouterr().out
    assert UsageRecord.objects.count() == 3000 and ApiKey.objects.count() == 40
    raw = UsageRecord.objects.aggregate(t=Sum("total_tokens"), c=Sum("cost_usd"), n=Count("id"))
    for table in (UsageRollup, UsageDailyRollup, UsageDailyKeyRollup, UsageDailyModelRollup):
        sums = table.objects.aggregate(t=Sum("total_tokens"), c=Sum("cost_usd"), n=Sum("requests"))
        assert (sums["t"], sums["n"]) == (raw["t"], raw["n"]), table
        assert abs(sums["c"] - raw["c"]) < 1e-6, table
    per_key = list(UsageRecord.objects.values("key_id").annotate(n=Count("id")).order_by("-n")
                   .values_list("n", flat=True))
    assert per_key[0] > 5 * per_key[len(per_key) // 2]  # a power law: a few busy keys, a long tail
    errors = UsageRecord.objects.filter(status__gte=400).count()
    assert 0 < errors < 300
    assert UsageRecord.objects.filter(streamed=True, ttft_ms__isnull=False).exists()


def test_generate_usage_refuses_nonsense():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("generate_usage", rows=10, keys=0)
