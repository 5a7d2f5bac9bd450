"""Domain XML (hypervisors.domain_xml.facts_from_xml, parse) and the
facts a vTPM manager and the libvirt hook judge, and xl configuration
files (xl_config_vtpms)."""

from korora_nova.hypervisors import domain_xml
from fuzz import common


def fuzz_one_input(data):
    facts = common.answer(domain_xml.facts_from_xml, data)
    if facts is not None:
        facts.refusal
        facts.vtpm
        facts.security_digest()
        facts.to_dict()
    common.answer(domain_xml.parse, common.text(data))
    common.answer(domain_xml.xl_config_vtpms, common.text(data))
