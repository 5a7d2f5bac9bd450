from django.urls import re_path

from korora_nova.dashboard.host_trust import views

urlpatterns = [
    re_path(r'^$', views.IndexView.as_view(), name='index'),
]
