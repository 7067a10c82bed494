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


@shared_task
def slow(seconds, key):
    """A long task (for the deploy test): marks its start, sleeps, marks its end. A worker
    restarted with a warm shutdown lets it finish."""
    import redis

    r = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    r.set(f"{key}:started", time.time())
    time.sleep(float(seconds))
    r.set(f"{key}:done", time.time())
    return key
