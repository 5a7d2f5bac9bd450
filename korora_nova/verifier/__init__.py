"""korora-verifier: enrolls hosts, attests them, keeps their verdicts."""
