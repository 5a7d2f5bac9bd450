from django.urls import re_path

from korora_nova.dashboard.host_trust import views

urlpatterns = [
    re_path(r'^$', views.IndexView.as_view(), name='index'),
    re_path(r'^enroll/$', views.EnrollView.as_view(), name='enroll'),
    re_path(r'^(?P<host>[^/]+)/set_policy/$', views.SetPolicyView.as_view(),
            name='set_policy'),
    re_path(r'^(?P<host>[^/]+)/record_policy/$',
            views.RecordPolicyView.as_view(), name='record_policy'),
    re_path(r'^(?P<host>[^/]+)/$', views.DetailView.as_view(),
            name='detail'),
]
