"""Finding the key a command names."""

from django.core.management.base import CommandError
from django.db.models import Q

from usage.models import ApiKey


def find_key(ref: str) -> ApiKey:
    query = Q(name=ref) | Q(prefix=ref)
    if ref.isdigit():
        query |= Q(pk=int(ref))
    matches = list(ApiKey.objects.filter(query)[:2])
    if not matches:
        raise CommandError(f"no API key named or prefixed {ref!r}")
    if len(matches) > 1:
        raise CommandError(f"{ref!r} matches several keys; use the key id")
    return matches[0]
