import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse

from .tasks import HEARTBEAT_KEY, ping


def home(request):
    with connection.cursor() as c:
        c.execute("SELECT 1")
    return HttpResponse("<h1>demo</h1><p>demo-home: Django is serving through Gunicorn.</p>")


def celery_ping(request):
    """Send a real task through Redis and wait (bounded) for the worker's answer."""
    try:
        answer = ping.delay().get(timeout=10)
    except CeleryTimeout:
        return HttpResponse("no worker answered within 10s", status=504, content_type="text/plain")
    except Exception as e:  # broker down, auth error, ...
        return HttpResponse(f"celery error: {type(e).__name__}", status=503, content_type="text/plain")
    return HttpResponse(answer, content_type="text/plain")


def heartbeat(request):
    value = redis.Redis.from_url(settings.CELERY_BROKER_URL).get(HEARTBEAT_KEY)
    return JsonResponse({"heartbeat": float(value) if value else None})
