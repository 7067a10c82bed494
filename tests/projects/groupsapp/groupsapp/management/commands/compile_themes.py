"""Build step: the theme files become the stylesheet the templates link."""
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Compile themes/*.theme into groupsapp/static/css/theme.css"

    def handle(self, *args, **options):
        base = Path(settings.BASE_DIR)
        rules = []
        for f in sorted((base / "themes").glob("*.theme")):
            for line in f.read_text().splitlines():
                key, _, value = line.partition(":")
                rules.append(f"  --{key.strip()}: {value.strip()};")
        out = base / "groupsapp" / "static" / "css" / "theme.css"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("/* groupsapp-theme-css */\n:root {\n" + "\n".join(rules) + "\n}\n")
        self.stdout.write(f"wrote {out}")
