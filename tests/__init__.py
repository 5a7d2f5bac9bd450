# Code of ours runs inside nova-compute and nova-scheduler, which run in
# eventlet mode by default or in native threading mode
# (OS_NOVA_DISABLE_EVENTLET_PATCHING=1). Decide the mode here, as Nova's
# own test packages do, before any test module imports oslo libraries.
import os

from nova import monkey_patch; monkey_patch.patch()  # noqa

# hypothesis runs every installed package's "hypothesis" entry point on
# import; trio's (installed with selenium) fails to import on eventlet's
# green sockets, and with it the discovery of every test.
os.environ.setdefault('HYPOTHESIS_NO_PLUGINS', '1')
