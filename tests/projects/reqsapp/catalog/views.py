from django.contrib.postgres.search import TrigramSimilarity
from django.http import HttpResponse
from django.shortcuts import render

from .models import Product
from .tasks import add


def home(request):
    return render(request, "home.html")


def task(request):
    return HttpResponse(str(add.delay(2, 3).get(timeout=20)))


def search(request):
    # pg_trgm's similarity(), found on the role's search_path.
    if not Product.objects.exists():
        Product.objects.create(name="keel anchor")
    hit = Product.objects.annotate(s=TrigramSimilarity("name", request.GET.get("q", ""))).order_by("-s").first()
    return HttpResponse(f"{hit.name} {hit.s:.2f}")
