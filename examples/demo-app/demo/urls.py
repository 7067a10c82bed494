from django.contrib import admin
from django.urls import path

from core import views

urlpatterns = [
    path("", views.home),
    path("celery-ping/", views.celery_ping),
    path("heartbeat/", views.heartbeat),
    path("echo/", views.echo),
    path("admin/", admin.site.urls),
]
