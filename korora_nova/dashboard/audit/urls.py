from django.urls import re_path

from korora_nova.dashboard.audit import views

urlpatterns = [
    re_path(r'^$', views.IndexView.as_view(), name='index'),
    re_path(r'^anchor/$', views.AnchorView.as_view(), name='anchor'),
]
