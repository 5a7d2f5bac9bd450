"""What a direct migration asks of libvirt on each host.

The domain moves with libvirt's own migration (virDomainMigrate3,
client-managed: this process holds both connections, which is what
``virsh migrate`` does and what worked between Xen dom0s), with the
flags Kororā needs:

- VIR_MIGRATE_PAUSED: the domain arrives paused and runs only once the
  destination's check of what arrived was verified;
- VIR_MIGRATE_PERSIST_DEST, and never VIR_MIGRATE_UNDEFINE_SOURCE: the
  source keeps its definition (and so its disks and vTPM state) until
  the commit, so a failed check leaves a copy to go back to;
- VIR_MIGRATE_TLS for QEMU; libxl has no encrypted migration stream.
"""

import libvirt

from korora_nova import exception
from korora_nova.hypervisors import domain_xml

XEN_TYPES = ('xen',)
UNENCRYPTED_LIBXL = (
    'libxl would send %s in a plain TCP stream (it has no TLS for '
    'migrations): set [korora] allow_unencrypted_migration_stream = true '
    'to accept that on a migration network you protect yourself (IPsec, '
    'WireGuard)')


def quiet_libvirt_errors():
    """Silence libvirt's default error handler, which prints every error
    on stderr: ours reach the operator once, in our message. The
    handler is process-wide, so a command sets it once when it starts."""
    libvirt.registerErrorHandler(lambda _context, _error: None, None)


def vtpm_secret_xml(secret_uuid, usage_name, private=True):
    """The XML of a persistent libvirt secret of usage type vtpm; a
    private one's value libvirt never gives back."""
    return ("<secret ephemeral='no' private='%s'><uuid>%s</uuid>"
            "<usage type='vtpm'><name>%s</name></usage></secret>"
            % ('yes' if private else 'no', secret_uuid, usage_name))


def _error(what, error):
    return exception.DomainError('%s: %s' % (what, error.get_error_message()
                                             or error))


class Domains:
    """The domains of the libvirt at uri (this host's)."""

    def __init__(self, uri):
        self.uri = uri
        try:
            self.connection = libvirt.open(uri)
        except libvirt.libvirtError as error:
            raise _error('cannot reach libvirt at %s' % uri, error)

    def close(self):
        try:
            self.connection.close()
        except libvirt.libvirtError:
            pass

    def find(self, name_or_uuid):
        """The domain named name_or_uuid (or with that UUID)."""
        try:
            try:
                return self.connection.lookupByName(name_or_uuid)
            except libvirt.libvirtError:
                return self.connection.lookupByUUIDString(name_or_uuid)
        except libvirt.libvirtError as error:
            raise _error('no domain %s at %s' % (name_or_uuid, self.uri),
                         error)

    def definition(self, domain):
        """(its XML, what domain_xml reads of it: type, vTPM, disks),
        from one read of the domain's definition."""
        try:
            xml = domain.XMLDesc(0)
        except libvirt.libvirtError as error:
            raise _error('cannot describe %s' % domain.name(), error)
        return xml, domain_xml.facts_from_xml(xml)

    def check_movable(self, domain):
        """DomainError unless domain runs and is defined persistently:
        a transient domain would leave no definition on the source to
        measure, nor to go back to."""
        if not domain.isActive():
            raise exception.DomainError('domain %s is not running'
                                        % domain.name())
        if not domain.isPersistent():
            raise exception.DomainError(
                'domain %s is transient: Korora keeps the source\'s '
                'definition until the arrival is proven, so define it '
                'first (virsh define)' % domain.name())

    def secret_value(self, secret_uuid):
        """The vTPM secret (text) libvirt holds for secret_uuid."""
        try:
            value = self.connection.secretLookupByUUIDString(
                secret_uuid).value()
        except libvirt.libvirtError as error:
            raise _error('cannot read the vTPM secret %s (a private '
                         'secret cannot be moved by Korora)' % secret_uuid,
                         error)
        try:
            return value.decode('utf-8')
        except UnicodeDecodeError:
            raise exception.DomainError('the vTPM secret %s is not text'
                                        % secret_uuid)

    def define_secret(self, secret_uuid, usage_name, value):
        """Define the vTPM secret on this host, as Nova's driver does on
        a destination before the transfer."""
        try:
            secret = self.connection.secretDefineXML(
                vtpm_secret_xml(secret_uuid, usage_name))
            secret.setValue(value.encode('utf-8'))
        except libvirt.libvirtError as error:
            raise _error('cannot define the vTPM secret %s' % secret_uuid,
                         error)

    def remove_secret(self, secret_uuid):
        try:
            self.connection.secretLookupByUUIDString(secret_uuid).undefine()
        except libvirt.libvirtError:
            pass

    def migrate(self, domain, destination, stream_uri=None,
                listen_address=None, live=False, allow_unencrypted=False):
        """Move domain to destination (a Domains); it arrives paused.
        Returns the domain as the destination has it."""
        _xml, facts = self.definition(domain)
        flags = libvirt.VIR_MIGRATE_PAUSED | libvirt.VIR_MIGRATE_PERSIST_DEST
        if live:
            flags |= libvirt.VIR_MIGRATE_LIVE
        if facts.domain_type not in XEN_TYPES:
            flags |= libvirt.VIR_MIGRATE_TLS
        elif not allow_unencrypted:
            raise exception.DomainError(UNENCRYPTED_LIBXL % domain.name())
        parameters = {}
        if stream_uri:
            parameters[libvirt.VIR_MIGRATE_PARAM_URI] = stream_uri
        if listen_address:
            parameters[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = (
                listen_address)
        try:
            return domain.migrate3(destination.connection, parameters, flags)
        except libvirt.libvirtError as error:
            raise _error('the migration of %s to %s failed'
                         % (domain.name(), destination.uri), error)

    def resume(self, domain):
        try:
            domain.resume()
        except libvirt.libvirtError as error:
            raise _error('cannot resume %s' % domain.name(), error)

    def pause(self, domain):
        """Pause domain unless it is paused already."""
        try:
            if domain.state()[0] != libvirt.VIR_DOMAIN_PAUSED:
                domain.suspend()
        except libvirt.libvirtError as error:
            raise _error('cannot pause %s' % domain.name(), error)

    def undefine_stopped(self, domain):
        """Undefine domain if it no longer runs here (the source's copy
        after the commit); a running domain is never undefined."""
        try:
            if not domain.isActive():
                _undefine(domain)
        except libvirt.libvirtError as error:
            raise _error('cannot undefine %s' % domain.name(), error)

    def remove_arrived(self, domain):
        """Destroy and undefine what a failed migration left here."""
        try:
            if domain.isActive():
                domain.destroy()
            _undefine(domain)
        except libvirt.libvirtError as error:
            raise _error('cannot remove %s' % domain.name(), error)


def _undefine(domain):
    """Undefine domain, and its NVRAM where it has one: libvirt's libxl
    driver refuses the NVRAM flag ("unsupported flags (0x4)")."""
    xml = domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                         if '<nvram' in xml else 0)
