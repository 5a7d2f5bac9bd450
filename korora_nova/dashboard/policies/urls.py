from django.urls import re_path

from korora_nova.dashboard.policies import views

urlpatterns = [
    re_path(r'^$', views.IndexView.as_view(), name='index'),
    re_path(r'^import/$', views.ImportView.as_view(), name='import'),
    # NAME:VERSION; a name may hold a slash.
    re_path(r'^(?P<policy>.+:[0-9]+)/$', views.DetailView.as_view(),
            name='detail'),
]
