"""Reference policies: for each PCR, the values an operator allows.

A policy file is JSON::

    {"name": "compute-2026-11", "version": 3,
     "pcrs": {"sha256": {"0": ["3d45...", "9f86..."], "10": ["..."]}}}

A PCR the policy names must be covered by the quote and hold one of its
values; PCRs the policy does not name are not judged.
"""

import dataclasses
import json

from korora_nova.attestation import pcr_values
from korora_nova.attestation import verdict
from korora_nova import exception

MAX_POLICY_FILE = 1024 * 1024
MAX_VALUES_PER_PCR = 4096
MAX_VERSION = 2 ** 31 - 1     # a SQL INTEGER on every backend


@dataclasses.dataclass(frozen=True)
class ReferencePolicy:
    name: str
    version: int
    allowed: dict      # {(bank, index): frozenset of digests}

    @property
    def label(self):
        return '%s v%d' % (self.name, self.version)

    def appraise(self, selection, values):
        """Reasons the values break this policy (none if they do not)."""
        covered = set(selection)
        reasons = []
        for (bank, index), allowed in sorted(self.allowed.items()):
            if (bank, index) not in covered:
                reasons.append(verdict.Reason(
                    verdict.PCR_POLICY,
                    'PCR %s:%d is required by policy %s but the quote does '
                    'not cover it' % (bank, index, self.label)))
                continue
            value = values[bank][index]
            if value not in allowed:
                reasons.append(verdict.Reason(
                    verdict.PCR_POLICY,
                    'PCR %s:%d = %s: not allowed by policy %s'
                    % (bank, index, value.hex(), self.label)))
        return reasons

    def to_json(self):
        pcrs = {}
        for (bank, index), allowed in sorted(self.allowed.items()):
            pcrs.setdefault(bank, {})[str(index)] = sorted(
                v.hex() for v in allowed)
        return {'name': self.name, 'version': self.version, 'pcrs': pcrs}


def from_json(document):
    """Build a policy from its JSON form (already decoded)."""
    if not isinstance(document, dict):
        raise exception.PolicyError('a policy is a JSON object')
    name = document.get('name')
    version = document.get('version', 1)
    banks = document.get('pcrs')
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise exception.PolicyError(
            'a policy needs a "name" (text, at most 255 characters)')
    if isinstance(version, bool) or not isinstance(version, int) or not (
            1 <= version <= MAX_VERSION):
        raise exception.PolicyError(
            'policy %s: "version" must be a whole number from 1 to %d'
            % (name, MAX_VERSION))
    if not isinstance(banks, dict) or not banks:
        raise exception.PolicyError(
            'policy %s: "pcrs" must map banks to PCRs to allowed values'
            % name)
    allowed = {}
    for bank, pcrs in banks.items():
        size = pcr_values.DIGEST_SIZES.get(bank)
        if size is None or not isinstance(pcrs, dict):
            raise exception.PolicyError(
                'policy %s: unknown PCR bank %r (use one of %s)'
                % (name, bank, ', '.join(sorted(pcr_values.DIGEST_SIZES))))
        if not pcrs:
            # An empty bank would make a policy that allows everything.
            raise exception.PolicyError(
                'policy %s: bank %s names no PCR' % (name, bank))
        for index, values in pcrs.items():
            key = (bank, _index(name, bank, index))
            allowed[key] = _digests(name, bank, index, values, size)
    return ReferencePolicy(name.strip(), version, allowed)


def _index(name, bank, index):
    number = pcr_values.pcr_index(index)
    if number is None:
        raise exception.PolicyError(
            'policy %s: %s PCR %r is not an index from 0 to %d'
            % (name, bank, index, pcr_values.MAX_PCR_INDEX))
    return number


def _digests(name, bank, index, values, size):
    if not isinstance(values, list) or not values or (
            len(values) > MAX_VALUES_PER_PCR):
        raise exception.PolicyError(
            'policy %s: %s PCR %s needs a list of 1 to %d allowed values'
            % (name, bank, index, MAX_VALUES_PER_PCR))
    digests = set()
    for value in values:
        try:
            digest = bytes.fromhex(value)
        except (TypeError, ValueError):
            digest = b''
        if len(digest) != size:
            raise exception.PolicyError(
                'policy %s: %s PCR %s: %r is not a %d-byte hex digest'
                % (name, bank, index, value, size))
        digests.add(digest)
    return frozenset(digests)


def loads(text):
    if len(text) > MAX_POLICY_FILE:
        raise exception.PolicyError(
            'policy is %d bytes; at most %d are accepted'
            % (len(text), MAX_POLICY_FILE))
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise exception.PolicyError('policy is not valid JSON: %s' % error)
    return from_json(document)


def load(path):
    try:
        with open(path, 'rb') as stream:
            text = stream.read(MAX_POLICY_FILE + 1)
    except OSError as error:
        raise exception.PolicyError(
            'cannot read policy file %s: %s' % (path, error.strerror))
    return loads(text)


def from_values(name, version, values):
    """A policy that allows exactly the given PCR values."""
    return ReferencePolicy(name, version, {
        (bank, index): frozenset([digest])
        for bank, pcrs in values.items() for index, digest in pcrs.items()})
