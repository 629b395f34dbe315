"""TLS for the servers: HTTPS and gRPC over TLS from one certificate and key, optional mTLS.

With a client CA, both servers require a client certificate signed by that CA (mutual TLS); a
client without one fails the handshake.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maas.errors import InvalidInput

if TYPE_CHECKING:
    import grpc

    from maas.config import SecuritySettings


@dataclass(frozen=True)
class TlsConfig:
    """The server's certificate and key, and the CA that client certificates must chain to.

    Attributes:
        cert_file: PEM certificate chain of the server (leaf first).
        key_file: PEM private key of that certificate (unencrypted).
        client_ca_file: PEM CA certificates; when set, clients must present a certificate
            signed by one of them (mTLS).
    """

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @property
    def requires_client_cert(self) -> bool:
        """Whether clients must present a certificate (mTLS)."""
        return self.client_ca_file is not None

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> TlsConfig | None:
        """The TLS the settings ask for, checked; None when no certificate is configured.

        Raises:
            InvalidInput: only one of certificate and key is set, or a file is unusable.
        """
        cert, key, ca = security.tls_cert_file, security.tls_key_file, security.tls_client_ca_file
        if cert is None and key is None:
            if ca is not None:
                raise InvalidInput(
                    "MAAS_SECURITY_TLS_CLIENT_CA_FILE (--tls-client-ca) needs a server certificate "
                    "and key: set --tls-cert and --tls-key too"
                )
            return None
        if cert is None or key is None:
            raise InvalidInput(
                "TLS needs both --tls-cert and --tls-key (a certificate and its key)"
            )
        config = cls(Path(cert), Path(key), Path(ca) if ca is not None else None)
        config.check()
        return config

    def check(self) -> None:
        """Load the files once, so a bad certificate fails at start-up with a clear message.

        Raises:
            InvalidInput: a file is missing or unreadable, or the key does not match.
        """
        self.server_context()

    def server_context(self) -> ssl.SSLContext:
        """The SSL context of the HTTPS server (requiring client certificates under mTLS).

        Raises:
            InvalidInput: a file is missing or unreadable, or the key does not match.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as err:
            raise InvalidInput(
                f"cannot use TLS certificate {self.cert_file} with key {self.key_file}: {err}"
            ) from err
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as err:
                raise InvalidInput(
                    f"cannot use TLS client CA {self.client_ca_file}: {err}"
                ) from err
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Server credentials for `add_secure_port` (requiring client certificates under mTLS).

        Raises:
            InvalidInput: a file cannot be read.
        """
        import grpc

        try:
            cert = self.cert_file.read_bytes()
            key = self.key_file.read_bytes()
            ca = self.client_ca_file.read_bytes() if self.client_ca_file is not None else None
        except OSError as err:
            raise InvalidInput(f"cannot read a TLS file: {err}") from err
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )
