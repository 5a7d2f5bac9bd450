"""What korora-libvirt-hook and korora-vtpm-manager say to each other.

One connection per decision, on the manager's UNIX socket: the hook
sends the header line ``korora-libvirt-hook 1 DOMAIN`` (at most
MAX_HEADER bytes), the domain XML, and shuts its writing side down; the
manager answers one line, ``PASS <summary>`` or ``REFUSE <reason>`` (at
most MAX_ANSWER bytes), and closes.

The standard library only: the hook imports this inside libvirt's
migration job.
"""

# Where korora-vtpm-manager answers, and how long the hook waits for it
# from its start: the defaults of [korora] libvirt_hook_socket and
# libvirt_hook_timeout.
DEFAULT_SOCKET = '/run/korora/libvirt-hook.sock'
DEFAULT_TIMEOUT = 10.0

PROTOCOL = b'korora-libvirt-hook 1'
PASS, REFUSE = 'PASS', 'REFUSE'
# The request's header line, the domain XML after it and the answer, at
# most.
MAX_HEADER = 100
MAX_XML_BYTES = 1024 * 1024
MAX_ANSWER = 4096
# Domain names as shown in messages.
MAX_NAME = 64

# One line of a refusal, at most this many characters.
MAX_LINE = 1000


class Refused(Exception):
    """The incoming domain is refused; the message says why (one line,
    without the prefix)."""


def one_line(text, limit=MAX_LINE):
    """text as one printable line of at most limit characters."""
    text = ''.join(c if c.isprintable() else ' ' for c in str(text))
    text = ' '.join(text.split())
    if len(text) > limit:
        text = text[:limit - 3] + '...'
    return text
