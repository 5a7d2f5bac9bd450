"""Judging TPM evidence: parsing, appraisal against policies, verdicts.

Nothing here talks to a TPM (that is korora_nova.tpm): a verifier needs
only the bytes a host sent and the identity it enrolled with.
"""
