from datetime import timedelta

from django.core.management.base import BaseCommand

from usage.keys import api_key_rotate
from usage.management.commands._keyref import find_key


class Command(BaseCommand):
    help = "Give an API key a new secret (printed alone on the last line); the old one works for --grace seconds."

    def add_arguments(self, parser):
        parser.add_argument("key", help="Key name, id, or the displayed prefix (sk-…).")
        parser.add_argument("--grace", type=int, default=0, help="Seconds the old secret keeps working.")

    def handle(self, *args, **opts):
        key = find_key(opts["key"])
        secret = api_key_rotate(key=key, grace=timedelta(seconds=opts["grace"]))
        self.stderr.write(f"rotated {key.name}; the new secret follows and is not stored:")
        self.stdout.write(secret)
