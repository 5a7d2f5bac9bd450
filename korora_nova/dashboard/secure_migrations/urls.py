from django.urls import re_path

from korora_nova.dashboard.secure_migrations import views

urlpatterns = [
    re_path(r'^$', views.IndexView.as_view(), name='index'),
    re_path(r'^(?P<migration_uuid>[^/]+)/$', views.DetailView.as_view(),
            name='detail'),
]
