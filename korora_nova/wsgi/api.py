"""korora-api's application object, for uWSGI's ``module =
korora_nova.wsgi.api:application`` and mod_wsgi, as nova.wsgi.osapi_compute
and placement.wsgi.api give theirs: the configuration is read when the
web server imports this module (korora_nova.api.wsgi.init_application).
"""

from korora_nova.api import wsgi

application = wsgi.init_application()
