import time

from celery import shared_task
from django.conf import settings

HEARTBEAT_KEY = "demo:beat:heartbeat"


@shared_task
def ping():
    return "pong"


@shared_task
def heartbeat():
    """Run by celery beat: stores the time, so a probe can see beat is alive."""
    import redis

    now = time.time()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).set(HEARTBEAT_KEY, now)
    return now
