"""The TPM connection: one owner, leftovers flushed, broken links reopened."""

from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.constants import TPM2_CAP
from tpm2_pytss.constants import TPM2_HC

from korora_nova import exception
from tests import base
from korora_nova.demo import services
from korora_nova.tpm import attestation_key
from korora_nova.tpm import connection
from korora_nova.tpm import quote


def transient_count(conn):
    with conn.esapi() as ectx:
        _, data = ectx.get_capability(TPM2_CAP.HANDLES,
                                      TPM2_HC.TRANSIENT_FIRST, 64)
        return data.data.handles.count


class TestTCTI(base.TestCase):

    def test_parse(self):
        self.assertEqual(('swtpm', 'host=127.0.0.1,port=1'),
                         connection.parse_tcti('swtpm:host=127.0.0.1,port=1'))
        self.assertEqual(('device', '/dev/tpmrm0'),
                         connection.parse_tcti('device:/dev/tpmrm0'))
        self.assertEqual(('mssim', None), connection.parse_tcti('mssim'))

    def test_empty_is_a_configuration_error(self):
        error = self.assertRaises(exception.ConfigurationError,
                                  connection.parse_tcti, '')
        self.assertIn('device:/dev/tpmrm0', str(error))

    def test_unreachable_tpm_is_a_connection_error(self):
        conn = connection.TPMConnection('swtpm:host=127.0.0.1,port=1')
        error = self.assertRaises(exception.TPMConnectionError,
                                  quote.read_pcrs, conn, [('sha256', 0)])
        self.assertIn('cannot open the TPM at swtpm:host=127.0.0.1,port=1',
                      str(error))


class TestConnection(base.TestCase):

    def setUp(self):
        super().setUp()
        self.host = self.useFixture(services.SoftwareTPMFixture())

    def test_reopens_after_the_tpm_restarts(self):
        before = quote.read_pcrs(self.host.connection, [('sha256', 0)])
        self.host.tpm.stop()
        self.assertRaises(exception.TPMConnectionError, quote.read_pcrs,
                          self.host.connection, [('sha256', 0)])
        self.host.tpm.start()
        after = quote.read_pcrs(self.host.connection, [('sha256', 0)])
        self.assertEqual(before, after)

    def test_leftover_objects_are_flushed_on_open(self):
        ak = self.host.attestation_key()
        with self.host.connection.esapi() as ectx:
            for _ in range(3):      # what a crashed client leaves behind
                ectx.create_primary(
                    None, attestation_key.ak_template('ecdsa-p256-sha256'),
                    ESYS_TR.ENDORSEMENT)
        self.assertEqual(3, transient_count(self.host.connection))
        self.host.connection.close()
        self.assertEqual(0, transient_count(self.host.connection))
        self.assertTrue(ak.public)

    def test_operations_leave_no_transient_objects(self):
        ak = self.host.attestation_key()
        selection = [('sha256', i) for i in range(12)]
        for n in range(40):     # far beyond swtpm's 3 object slots
            quote.quote(self.host.connection, ak, selection, b'n%d' % n)
        self.assertEqual(0, transient_count(self.host.connection))

    def test_tpm_refusal_is_a_korora_error(self):
        error = self.assertRaises(
            exception.TPMError, quote.extend_pcr, self.host.connection,
            'sha256', 17, b'PCR 17 is for the dynamic root of trust only')
        self.assertIn('refused a command', str(error))
        self.assertIn('locality', str(error))
