import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "groupsapp.settings")

tasks = Celery("groupsapp")
tasks.config_from_object("django.conf:settings", namespace="CELERY")
tasks.autodiscover_tasks()
app = tasks
