from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from members import views

urlpatterns = [
    path("", views.home),
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("upload/", views.upload),
    path("boom/", views.boom),
    path("admin/", admin.site.urls),
]
