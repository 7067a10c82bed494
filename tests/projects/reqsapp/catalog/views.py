from django.http import HttpResponse
from django.shortcuts import render

from .tasks import add


def home(request):
    return render(request, "home.html")


def task(request):
    return HttpResponse(str(add.delay(2, 3).get(timeout=20)))
