"""One module per entry point, each with fuzz_one_input(data)."""

import os

NAMES = sorted(name[:-3] for name in os.listdir(os.path.dirname(__file__))
               if name.endswith('.py') and not name.startswith('_'))
