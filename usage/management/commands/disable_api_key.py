from django.core.management.base import BaseCommand

from usage.keys import api_key_disable
from usage.management.commands._keyref import find_key


class Command(BaseCommand):
    help = "Disable an API key (by name, id or secret prefix); it stops working on every process within seconds."

    def add_arguments(self, parser):
        parser.add_argument("key", help="Key name, id, or the displayed prefix (sk-…).")

    def handle(self, *args, **opts):
        key = find_key(opts["key"])
        api_key_disable(key=key)
        self.stdout.write(f"disabled {key.name} ({key.prefix}…)")
