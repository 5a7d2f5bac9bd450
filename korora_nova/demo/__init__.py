"""The in-process cloud of ``korora-demo`` and of the migration
benchmark: Nova 34's own services (API, conductor, scheduler, three
computes) run in one process with Nova's functional test harness, each
compute host with its own software TPM and vTPM manager.

``runner`` imports nothing of Nova's and may be imported first, to send
the logs to a file; ``cloud`` and ``story`` import Nova's functional
package, which monkey-patches eventlet on import: import them only once
the logging is set up, before anything else of oslo's or urllib3's.
"""
