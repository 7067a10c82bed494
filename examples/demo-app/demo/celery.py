import os

from celery import Celery
from celery.signals import beat_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")

app = Celery("demo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@beat_init.connect
def first_heartbeat(sender=None, **kwargs):
    """Beat's first tick comes a full interval after start; send one heartbeat right away."""
    sender.app.send_task("core.tasks.heartbeat")
