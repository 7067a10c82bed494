from django.conf import settings
from django.contrib import admin
from django.urls import path

from shop import views

urlpatterns = [
    path("", views.home),
    path("task/", views.task),
    path("slow/", views.slow),
    path(settings.ADMIN_URL, admin.site.urls),
]
