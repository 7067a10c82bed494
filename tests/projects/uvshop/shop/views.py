from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render

from .tasks import add, rebuild_index


def home(request):
    return render(request, "home.html", {"shop": settings.SHOP_NAME})


def task(request):
    # A real round trip: the worker computes it, the result comes back through Redis.
    return HttpResponse(str(add.delay(2, 3).get(timeout=20)))


def slow(request):
    r = rebuild_index.delay()
    if request.GET.get("wait") == "0":
        return HttpResponse(f"queued {r.id}")
    return HttpResponse(r.get(timeout=20))
