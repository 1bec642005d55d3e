"""API keys, teams, and one usage record per authenticated request."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

# --- limits (usage/limits.py enforces them) -------------------------------------------------------


class BudgetPeriod(models.TextChoices):
    DAY = "day", "Day (UTC)"
    WEEK = "week", "Week (Monday, UTC)"
    MONTH = "month", "Month (UTC)"


LIMIT_FIELDS = (
    "rpm_limit", "tpm_limit", "parallel_limit", "token_budget", "token_budget_period", "usd_budget",
    "usd_budget_period", "budget_warn_percent",
)


class LimitFields(models.Model):
    """Rate limits and budgets shared by keys and teams. Blank means no limit of that kind."""

    rpm_limit = models.PositiveIntegerField(
        "requests per minute", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    tpm_limit = models.PositiveIntegerField(
        "tokens per minute", null=True, blank=True, validators=[MinValueValidator(1)],
        help_text="Counted as prompt estimate + max output tokens when a call starts, corrected when it ends.",
    )
    parallel_limit = models.PositiveIntegerField(
        "parallel requests", null=True, blank=True, validators=[MinValueValidator(1)]
    )
    token_budget = models.PositiveBigIntegerField(
        "token budget", null=True, blank=True, help_text="Total tokens per budget period; 0 blocks every call."
    )
    token_budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTH)
    usd_budget = models.DecimalField(
        "budget (USD)", max_digits=14, decimal_places=4, null=True, blank=True,
        validators=[MinValueValidator(0)], help_text="Cost per budget period, from the registry's prices.",
    )
    usd_budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTH)
    budget_warn_percent = models.PositiveSmallIntegerField(
        "warn at (% of budget)", null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Soft threshold: past it, responses carry x-gateway-budget-warning and the gateway logs a "
                  "warning; calls are not refused until the budget itself is spent.",
    )

    class Meta:
        abstract = True


class Team(LimitFields):
    name = models.CharField(max_length=120, unique=True)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Public model names this team may use; empty means all."
    )
    allowed_regions = models.JSONField(
        default=list, blank=True,
        help_text='Data residency: OCI regions this team\'s calls may go to, e.g. ["eu-frankfurt-1"]; empty: any.',
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="Cost centre, owner e-mail, ...")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(is_active=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiKey(LimitFields):
    """A client key. Only an HMAC of the secret is stored; the secret is shown once at creation."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Created by an operator"
        ENVIRONMENT = "environment", "GATEWAY_API_KEYS"
        GENERATED = "generated", "Generated at first start"
        DEMO = "demo", "Demo mode"

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, help_text="The first characters of the secret, for recognising it.")
    lookup_hash = models.CharField(max_length=64, unique=True, help_text="HMAC-SHA256 of the secret.")
    previous_lookup_hash = models.CharField(max_length=64, blank=True, db_index=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="keys")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Public model names this key may use; empty means all."
    )
    allowed_regions = models.JSONField(
        default=list, blank=True,
        help_text='Data residency: OCI regions this key\'s calls may go to, e.g. ["eu-frankfurt-1"]; empty: any.',
    )
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.ADMIN)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_rotated_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class UsageRecordQuerySet(models.QuerySet):
    def for_key(self, key_id: int):
        return self.filter(key_id=key_id)

    def between(self, start, end):
        qs = self
        if start is not None:
            qs = qs.filter(created_at__gte=start)
        if end is not None:
            qs = qs.filter(created_at__lt=end)
        return qs


class UniqueWithPartitionKey(models.UniqueConstraint):
    """UNIQUE(fields) on SQLite; UNIQUE(fields, created_at) on PostgreSQL.

    There the raw usage table is partitioned by month of created_at (migration 0006, usage/partitions.py),
    and PostgreSQL requires every unique key of a partitioned table to contain the partition key. It still
    stops a record from being stored twice: a record's created_at is fixed when its request happens, before
    it is queued, so a replayed or re-delivered record carries the same pair. The usage writer also looks
    request ids up (across all partitions) before inserting.
    """

    def _for(self, schema_editor) -> models.UniqueConstraint:
        fields = self.fields
        if schema_editor.connection.vendor == "postgresql":
            fields = (*fields, "created_at")
        return models.UniqueConstraint(fields=fields, name=self.name)

    def constraint_sql(self, model, schema_editor):
        return self._for(schema_editor).constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        return self._for(schema_editor).create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        return self._for(schema_editor).remove_sql(model, schema_editor)


class UsageRecord(models.Model):
    """One row per authenticated request, whatever its outcome. Never stores prompt or completion text.

    On PostgreSQL the table is partitioned by month of created_at: its primary key there is (id, created_at),
    ids still come from one sequence, and Django keeps treating `id` as the primary key.
    """

    class Source(models.TextChoices):
        UPSTREAM = "upstream", "Counted by OCI"
        ESTIMATED = "estimated", "Estimated by the gateway"
        NONE = "none", "No tokens"

    request_id = models.CharField(max_length=64)  # unique: see Meta.constraints
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Kept after a key or team is deleted: usage history outlives them. No index of their own: the
    # (key, created_at) and (team, created_at) indexes serve every lookup, and each index costs every insert.
    key = models.ForeignKey(ApiKey, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False)
    team = models.ForeignKey(Team, null=True, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False)
    endpoint = models.CharField(max_length=32)
    public_model = models.CharField(max_length=200, blank=True)
    deployment = models.CharField(max_length=120, blank=True)
    region = models.CharField(max_length=40, blank=True)
    status = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True)
    streamed = models.BooleanField(default=False)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    usage_source = models.CharField(max_length=16, choices=Source.choices, default=Source.NONE)
    cost_usd = models.DecimalField(max_digits=14, decimal_places=8, default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True)
    upstream_request_id = models.CharField(max_length=200, blank=True)
    client_ip = models.GenericIPAddressField(null=True)
    user_agent = models.CharField(max_length=300, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        constraints = [UniqueWithPartitionKey(fields=["request_id"], name="usage_request_id_unique")]
        indexes = [
            models.Index(fields=["key", "created_at"], name="usage_key_time"),
            # The dashboards' latency sample of one team reads its latest rows by this index (bounded).
            models.Index(fields=["team", "created_at"], name="usage_team_time"),
        ]


class UsageRollup(models.Model):
    """Per key × model × hour totals, kept current by the usage writer, so dashboards never scan raw rows."""

    bucket = models.DateTimeField(help_text="Start of the hour (UTC).")
    key_id = models.BigIntegerField(help_text="ApiKey id (kept after the key is deleted).")
    team_id = models.BigIntegerField(default=0, help_text="Team id, 0 for none.")
    public_model = models.CharField(max_length=200)
    region = models.CharField(max_length=40)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    estimated_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    latency_ms_sum = models.PositiveBigIntegerField(default=0)
    ttft_ms_sum = models.PositiveBigIntegerField(default=0)
    ttft_count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "key_id", "public_model", "region"], name="rollup_unique_bucket")
        ]
        indexes = [
            models.Index(fields=["key_id", "bucket"], name="rollup_key_bucket"),
            models.Index(fields=["team_id", "bucket"], name="rollup_team_bucket"),
            models.Index(fields=["bucket"], name="rollup_bucket"),
        ]


class DailySums(models.Model):
    """The totals every daily rollup table carries (the same as the hourly rollups')."""

    day = models.DateField(help_text="UTC day.")
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    estimated_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=8, default=0)
    latency_ms_sum = models.BigIntegerField(default=0)
    ttft_ms_sum = models.BigIntegerField(default=0)
    ttft_count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageDailyRollup(DailySums):
    """Per key × model × region × UTC day: the hourly rollups summed, for dashboards over weeks and months.

    This and the two narrower daily tables below are kept current by database triggers on the hourly
    rollup table (migrations 0003 and 0005), so every writer of hourly rollups (usage/writer.py,
    `generate_usage`) keeps them exact without knowing about them. At 10M usage rows the hourly table
    holds millions of rows and a 90-day aggregate over it takes seconds (docs/benchmarks.md).
    """

    key_id = models.BigIntegerField()
    team_id = models.BigIntegerField(default=0)
    public_model = models.CharField(max_length=200)
    region = models.CharField(max_length=40)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "key_id", "public_model", "region"], name="daily_rollup_unique")
        ]
        indexes = [
            models.Index(fields=["key_id", "day"], name="daily_rollup_key_day"),
            models.Index(fields=["team_id", "day"], name="daily_rollup_team_day"),
            models.Index(fields=["day"], name="daily_rollup_day"),
        ]


class UsageDailyKeyRollup(DailySums):
    """Per key × UTC day, all models and regions together: ranks keys and teams over long windows."""

    key_id = models.BigIntegerField()
    team_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "key_id"], name="daily_key_rollup_unique")]
        indexes = [
            models.Index(fields=["key_id", "day"], name="daily_key_rollup_key_day"),
            models.Index(fields=["team_id", "day"], name="daily_key_rollup_team_day"),
        ]


class UsageDailyModelRollup(DailySums):
    """Per model × region × UTC day, all keys together: the unfiltered dashboard's series and breakdowns."""

    public_model = models.CharField(max_length=200)
    region = models.CharField(max_length=40)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "public_model", "region"], name="daily_model_rollup_unique")
        ]


class LimitCounter(models.Model):
    """Shared limit state when no Redis is configured (usage/limits.py, database backend).

    `value` is a GCRA theoretical arrival time in microseconds, or a budget's spent + reserved amount
    (tokens, or nano-USD). Rows are locked with SELECT … FOR UPDATE on PostgreSQL; SQLite serialises
    writers with BEGIN IMMEDIATE.
    """

    name = models.CharField(max_length=120, unique=True)
    value = models.BigIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)


class LimitSlot(models.Model):
    """One running call holding a parallel-request slot (database backend); expires if never released."""

    scope = models.CharField(max_length=40, db_index=True)
    token = models.CharField(max_length=40, unique=True)
    expires_at = models.DateTimeField()
