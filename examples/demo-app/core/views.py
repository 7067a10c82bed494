import redis
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.utils.html import escape

from .tasks import HEARTBEAT_KEY, ping


def home(request):
    with connection.cursor() as c:
        c.execute("SELECT 1")
    return HttpResponse(
        "<h1>demo</h1><p>demo-home: Django is serving through Gunicorn.</p>"
        f"<p>secure={request.is_secure()}</p>"
    )


def echo(request):
    """A form with Django's CSRF protection: GET shows it, POST answers what was sent."""
    if request.method == "POST":
        return HttpResponse(f"posted: {escape(request.POST.get('message', ''))}", content_type="text/plain")
    token = get_token(request)
    return HttpResponse(
        '<form method="post"><input type="hidden" name="csrfmiddlewaretoken" '
        f'value="{token}"><input name="message"><button>send</button></form>'
    )


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
