from django.contrib.auth.decorators import login_required
from django.core.files.storage import default_storage
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt


@login_required
def home(request):
    return HttpResponse("members-home")


@csrf_exempt
def upload(request):
    # An upload as users make them: the file goes to MEDIA_ROOT through Django's storage.
    f = request.FILES["file"]
    name = default_storage.save(f.name, f)
    return HttpResponse(default_storage.url(name))


def boom(request):
    raise RuntimeError("members-boom on purpose")
