"""Turn a fleet :class:`Device` into a connected :class:`AgentClient`.

Secrets are resolved here, at connect time, and nowhere else: the token from
the environment variable named by ``token_env``, the TLS material from the
PEM files named by ``tls_ca``/``tls_cert``/``tls_key`` (relative paths are
relative to the fleet file's folder). Nothing read here is stored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetnas.agent.client import AgentClient
from fleetnas.controller.fleet._errors import MissingSecret
from fleetnas.controller.fleet._model import Device, Fleet

DEFAULT_CALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ClientFactory:
    """Builds clients for devices. Thread-safe (it holds no mutable state).

    ``env`` defaults to ``os.environ`` as it is when :meth:`connect` runs;
    ``base_dir`` is the folder relative TLS paths are resolved against.
    """

    base_dir: Path | None = None
    env: Mapping[str, str] | None = None
    call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S

    @classmethod
    def for_fleet(
        cls,
        fleet: Fleet,
        *,
        env: Mapping[str, str] | None = None,
        call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
    ) -> ClientFactory:
        return cls(base_dir=fleet.base_dir, env=env, call_timeout_s=call_timeout_s)

    def token_for(self, device: Device) -> str | None:
        """The device's token from its env var, ``None`` if it has none; raises MissingSecret."""
        if device.token_env is None:
            return None
        environ = os.environ if self.env is None else self.env
        token = environ.get(device.token_env)
        if not token:
            raise MissingSecret(
                f"device {device.name!r} needs a token: export {device.token_env}=<token> "
                "(the variable named by its token_env)"
            )
        return token

    def _read_pem(self, device: Device, what: str, value: str | None) -> bytes | None:
        if value is None:
            return None
        path = Path(value).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        try:
            return path.read_bytes()
        except OSError as exc:
            raise MissingSecret(
                f"device {device.name!r}: cannot read {what} {str(path)!r} ({exc.strerror}); "
                "fix the path in the fleet file"
            ) from None

    def connect(self, device: Device, *, call_timeout_s: float | None = None) -> AgentClient:
        """A client for ``device`` (no call is made yet). Raises :class:`MissingSecret`."""
        token = self.token_for(device)
        return AgentClient(
            device.address,
            token=token,
            root_certificates=self._read_pem(device, "tls_ca", device.tls_ca),
            client_cert=self._read_pem(device, "tls_cert", device.tls_cert),
            client_key=self._read_pem(device, "tls_key", device.tls_key),
            tls=device.uses_tls,
            server_name_override=device.tls_server_name,
            call_timeout_s=call_timeout_s or self.call_timeout_s,
        )
