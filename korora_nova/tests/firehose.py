"""Everything a RabbitMQ node carries, as its firehose shows it.

``FirehoseFixture`` turns the node's firehose on (``rabbitmqctl
trace_on``), binds a queue of its own to ``amq.rabbitmq.trace`` with
routing key ``#`` and collects, in a thread, every traced message: one
``publish.<exchange>`` copy per message any client published and one
``deliver.<queue>`` copy per delivery, each with its body and the
broker's headers (exchange, routing keys, the original properties and
headers). ``sync()`` waits until everything published before it has been
collected. ``find(secret)`` says where a secret shows, in any of the
encodings of ``encodings(secret)``.

This is what any client of the broker (or anyone reading its disk or
its network) could see: a secret that is not there never crossed the
bus.
"""

import base64
import json
import threading
import time
import uuid

import fixtures
import kombu

TRACE_EXCHANGE = 'amq.rabbitmq.trace'
SYNC_TIMEOUT = 30.0


def _unaligned_base64(data, encode):
    """The parts of encode(data) that do not depend on what comes before
    or after data, for each of data's three alignments in a longer
    byte string (so a secret inside a longer encoded value is found)."""
    found = []
    for shift in range(3):
        text = encode(b'\0' * shift + data).rstrip(b'=')
        first = -(-8 * shift // 6)
        last = (8 * (shift + len(data)) - 6) // 6
        found.append(text[first:last + 1])
    return found


def encodings(secret):
    """{name: bytes} of every form of secret this module looks for:
    plain, hex, base64, url-safe base64, JSON-escaped (once and twice, as
    oslo.messaging's envelope nests JSON in JSON), as UTF-8 bytes."""
    plain = secret.encode('utf-8')
    forms = {'plain': plain,
             'hex': plain.hex().encode('ascii'),
             'HEX': plain.hex().upper().encode('ascii')}
    for name, encode in (('base64', base64.b64encode),
                         ('urlsafe-base64', base64.urlsafe_b64encode)):
        for shift, text in enumerate(_unaligned_base64(plain, encode)):
            forms['%s@%d' % (name, shift)] = text
    for ascii_only in (True, False):
        once = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        twice = json.dumps(once, ensure_ascii=ascii_only)[1:-1]
        suffix = '' if ascii_only else '-utf8'
        forms['json' + suffix] = once.encode('utf-8')
        forms['json-in-json' + suffix] = twice.encode('utf-8')
    return forms


class TracedMessage:
    """One message as the firehose republished it."""

    def __init__(self, routing_key, headers, body):
        self.routing_key = routing_key
        self.headers = headers
        self.body = body

    def text(self):
        """Body and headers as bytes, to search in."""
        return self.body + b'\n' + repr(self.headers).encode('utf-8')

    def __repr__(self):
        return '<%s %s>' % (self.routing_key, self.body[:200])


class FirehoseFixture(fixtures.Fixture):
    """The firehose of broker (a tests.rabbitmq.RabbitMQFixture) on, and
    collected in ``messages`` (TracedMessage, in arrival order)."""

    def __init__(self, broker, vhost='/'):
        super().__init__()
        self.broker = broker
        self.vhost = vhost
        self.messages = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._failure = None

    @property
    def amqp_url(self):
        return 'amqp://guest:guest@127.0.0.1:%d/' % self.broker.port

    def _setUp(self):
        self.queue_name = 'korora-firehose-' + uuid.uuid4().hex
        self.connection = kombu.Connection(self.amqp_url)
        self.addCleanup(self.connection.release)
        channel = self.connection.channel()
        queue = kombu.Queue(
            self.queue_name, exchange=kombu.Exchange(TRACE_EXCHANGE,
                                                     type='topic',
                                                     passive=True),
            routing_key='#', exclusive=True, auto_delete=True,
            channel=channel)
        queue.declare()
        self.consumer = kombu.Consumer(channel, [queue],
                                       callbacks=[self._collect],
                                       accept=None, no_ack=True)
        self.consumer.consume()
        self.broker.trace_on(self.vhost)
        self.addCleanup(self.broker.trace_off, self.vhost)
        self.thread = threading.Thread(target=self._drain, daemon=True,
                                       name='korora-firehose')
        self.thread.start()
        self.addCleanup(self._stop)

    def _collect(self, body, message):
        raw = message.body
        if isinstance(raw, str):
            raw = raw.encode('utf-8')
        with self._lock:
            self.messages.append(TracedMessage(
                message.delivery_info.get('routing_key'),
                dict(message.headers or {}), raw))

    def _drain(self):
        while not self._stopping.is_set():
            try:
                self.connection.drain_events(timeout=0.2)
            except TimeoutError:
                continue
            except OSError as error:
                if not self._stopping.is_set():
                    self._failure = error
                return

    def _stop(self):
        self._stopping.set()
        self.thread.join(5)

    def publish(self, body, routing_key=None):
        """Publish body (bytes) on the broker through a connection of its
        own, to a queue of its own; returns the queue's name."""
        routing_key = routing_key or 'korora-probe-' + uuid.uuid4().hex
        with kombu.Connection(self.amqp_url) as connection:
            queue = kombu.Queue(routing_key, routing_key=routing_key,
                                exchange=kombu.Exchange(''),
                                auto_delete=False)
            producer = connection.Producer()
            producer.publish(body, routing_key=routing_key,
                             declare=[queue], serializer=None,
                             content_type='application/octet-stream')
            queue(connection.default_channel).delete()
        return routing_key

    def sync(self, timeout=SYNC_TIMEOUT):
        """Wait until what was published before has been collected: the
        broker traces in order, so once a marker of ours arrives, so has
        everything before it."""
        marker = ('korora-firehose-marker-' + uuid.uuid4().hex).encode()
        self.publish(marker)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise self._failure
            with self._lock:
                if any(m.body == marker for m in self.messages):
                    return
            time.sleep(0.05)
        raise AssertionError('the firehose did not show a marker within '
                             '%.0f s' % timeout)

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def find(self, secret, messages=None):
        """[(routing key, encoding name, message)] for every traced
        message that holds secret in one of its encodings."""
        forms = encodings(secret)
        found = []
        for message in (self.snapshot() if messages is None else messages):
            text = message.text()
            for name, form in forms.items():
                if form and form in text:
                    found.append((message.routing_key, name, message))
        return found
