from django.http import HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _

from .models import Site
from .tasks import add


def home(request):
    site = Site.objects.first()
    with translation.override("de"):
        greeting = _("Welcome")
    return render(request, "home.html", {"site": site.name if site else "none", "greeting": greeting})


def task(request):
    return HttpResponse(str(add.delay(2, 3).get(timeout=20)))
