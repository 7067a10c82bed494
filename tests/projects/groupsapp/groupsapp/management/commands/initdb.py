"""Release step: the data every instance starts with (idempotent)."""
from django.core.management.base import BaseCommand

from groupsapp.models import Site


class Command(BaseCommand):
    def handle(self, *args, **options):
        site, made = Site.objects.get_or_create(id=1, defaults={"name": "initialised"})
        self.stdout.write(f"site {site.name} ({'made' if made else 'kept'})")
