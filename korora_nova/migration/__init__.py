"""Live migrations as Clark-Wilson transformation procedures.

A live migration of a vTPM instance is a state machine (``states``): each
step the hooks take is a transformation procedure that moves it from one
state to the next, and only the moves in ``states.TRANSITIONS`` are
allowed. ``records`` keeps every migration and its current state in the
verifier's database, so that a restarted service finds the migrations in
flight; ``audit`` appends every move to a hash-chained, append-only log
whose head a host TPM signs (anchors), and verifies that log.
"""
