"""The API's microversions (header ``OpenStack-API-Version: korora X.Y``).

Add a version at the end of VERSIONS, and its line in
doc/source/admin/api.rst, when a request or a response changes.
"""

SERVICE_TYPE = 'korora'
# 1.0: hosts, policies, migrations, audit, instance trust.
VERSIONS = ['1.0']
ENVIRON = '%s.microversion' % SERVICE_TYPE


def min_version_string():
    return VERSIONS[0]


def max_version_string():
    return VERSIONS[-1]
