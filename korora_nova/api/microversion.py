"""The API's microversions (header ``OpenStack-API-Version: korora X.Y``).

Add a version at the end of VERSIONS, and its line in
doc/source/admin/api.rst, when a request or a response changes.
"""

SERVICE_TYPE = 'korora'
# 1.0: hosts, policies, migrations, audit, instance trust.
# 1.1: POST /audit/anchors (anchor the audit log with a host's TPM),
#      POST /hosts/{host}/quote (a host's verified PCR values, for a
#      policy the operator signs).
# 1.2: those two take {"nonce": ...}, a nonce the client drew, and
#      answer with the verifier's token signed for it
#      (attestation.operator_answers): the client believes only that.
VERSIONS = ['1.0', '1.1', '1.2']
SIGNED_READS = '1.2'
ENVIRON = '%s.microversion' % SERVICE_TYPE


def at_least(environ, version):
    """Whether the request asked for microversion version or later."""
    major, minor = (int(part) for part in version.split('.'))
    asked = environ[ENVIRON]
    return (asked.major, asked.minor) >= (major, minor)


def min_version_string():
    return VERSIONS[0]


def max_version_string():
    return VERSIONS[-1]
