from django.urls import path

from catalog import views

urlpatterns = [path("", views.home), path("task/", views.task), path("search/", views.search)]
