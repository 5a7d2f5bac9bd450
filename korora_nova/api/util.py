"""What every handler needs: JSON in and out, errors in OpenStack's
format, query strings and bodies checked against their JSON schemas,
pages."""

import json
import urllib.parse

import jsonschema
from oslo_middleware import request_id
from oslo_serialization import jsonutils
import webob
import webob.exc

from korora_nova.api import microversion
from korora_nova import conf

CONF = conf.CONF
# Bodies larger than this are refused unread (a policy file is at most
# 1 MiB; its signature about 4/3 of that).
MAX_BODY = 3 * 1024 * 1024


def json_error_formatter(body, status, title, environ):
    """webob's json_formatter: OpenStack's error format (API-WG), with
    the request id."""
    status_code = int(status.split(None, 1)[0])
    # One line: webob's own templates put their text before the reason.
    lines = [line.strip() for line in
             webob.exc.strip_tags(body).splitlines() if line.strip()]
    error = {'status': status_code, 'title': title,
             'detail': lines[-1] if lines else title}
    if request_id.ENV_REQUEST_ID in environ:
        error['request_id'] = environ[request_id.ENV_REQUEST_ID]
    if status_code == 406 and microversion.ENVIRON not in environ:
        error['min_version'] = microversion.min_version_string()
        error['max_version'] = microversion.max_version_string()
    return {'errors': [error]}


def error(kind, message, **kwargs):
    """A webob HTTP error (kind: e.g. webob.exc.HTTPBadRequest) whose body
    is OpenStack's JSON error with message, one line."""
    return kind(explanation=str(message).splitlines()[0] if message else '',
                json_formatter=json_error_formatter, **kwargs)


def json_response(data, status=200, headers=None):
    response = webob.Response(status=status, charset='utf-8',
                              content_type='application/json')
    response.text = jsonutils.dumps(data, sort_keys=True)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def path_item(req, name):
    """A variable of the URL's route."""
    return req.environ['wsgiorg.routing_args'][1][name]


def _check(schema, data, what):
    try:
        jsonschema.validate(data, schema,
                            format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as failure:
        where = '/'.join(str(part) for part in failure.absolute_path)
        raise error(webob.exc.HTTPBadRequest, '%s%s: %s' % (
            what, ' %s' % where if where else '', failure.message[:300]))


def body(req, schema):
    """The request's JSON body, checked against schema; 400 otherwise."""
    if req.content_length is not None and req.content_length > MAX_BODY:
        raise error(webob.exc.HTTPRequestEntityTooLarge,
                    'the body is larger than %d bytes' % MAX_BODY)
    if req.content_type != 'application/json':
        raise error(webob.exc.HTTPUnsupportedMediaType,
                    'the body must be application/json, not %r'
                    % (req.content_type or 'none'))
    try:
        data = json.loads(req.body_file.read(MAX_BODY + 1))
    except (ValueError, UnicodeDecodeError, RecursionError) as failure:
        raise error(webob.exc.HTTPBadRequest,
                    'the body is not JSON: %s' % failure)
    _check(schema, data, 'body')
    return data


def query(req, schema):
    """The query string as {name: value}, checked against schema (every
    parameter at most once); 400 otherwise."""
    values = {}
    for name, value in req.GET.items():
        if name in values:
            raise error(webob.exc.HTTPBadRequest,
                        'query parameter %s is given more than once' % name)
        values[name] = value
    _check(schema, values, 'query string')
    return values


def page_limit(values):
    """The page size a request asked for, bounded by [korora_api]
    max_limit (default [korora_api] default_limit)."""
    options = CONF.korora_api
    if 'limit' not in values:
        return min(options.default_limit, options.max_limit)
    return min(int(values['limit']), options.max_limit)


def links(req, name, items, limit, marker_of, values, last=None):
    """{name: items, name_links: [next]}: a next link when the page is
    full (the next may be empty). last: the marker of a page whose items
    were filtered after the query (the page was full)."""
    page = {name: items, '%s_links' % name: []}
    marker = last
    if marker is None and items and len(items) == limit:
        marker = marker_of(items[-1])
    if marker is not None:
        params = dict(values, limit=str(limit), marker=marker)
        page['%s_links' % name] = [{
            'rel': 'next', 'href': req.path_url + '?' + urllib.parse.urlencode(
                sorted(params.items()))}]
    return page


def iso(value):
    return value.isoformat(timespec='seconds') + 'Z' if value else None
