import os

# Code of ours runs inside nova-compute and nova-scheduler, which run in
# eventlet mode by default or in native threading mode
# (OS_NOVA_DISABLE_EVENTLET_PATCHING=1). Decide the mode here, as Nova's
# own test packages do, before any test module imports oslo libraries.
from nova import monkey_patch; monkey_patch.patch()  # noqa

# hypothesis loads the plugins other packages register; trio's (a
# dependency of selenium, for the browser test) cannot be imported once
# eventlet has patched the socket module. The property tests need none.
os.environ.setdefault('HYPOTHESIS_NO_PLUGINS', '1')
