"""The verifier's database: enrolled hosts, policies, verdicts."""
