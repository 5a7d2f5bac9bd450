"""korora-api: the REST API on [korora_api] bind_host:bind_port with
the standard library's WSGI server, for development and tests. In a
deployment a web server runs korora-api-wsgi (korora_nova.api.wsgi)."""

import socketserver
import sys
from wsgiref import simple_server

from oslo_log import log as logging

from korora_nova.api import deploy
from korora_nova.api import wsgi
from korora_nova import conf

CONF = conf.CONF
LOG = logging.getLogger(__name__)


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


def main(argv=None):
    wsgi.setup(sys.argv[1:] if argv is None else argv, config_files=None)
    application = deploy.deploy(CONF)
    options = CONF.korora_api
    server = simple_server.make_server(options.bind_host, options.bind_port,
                                       application, server_class=_Server)
    LOG.info('korora-api listening on %s:%d', options.bind_host,
             options.bind_port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
