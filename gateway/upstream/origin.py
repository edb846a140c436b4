"""Origin: scheme, host and port of an upstream, the key of a connection pool."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str  # http | https
    host: str
    port: int
    host_header: bytes = field(default=b"", compare=False)

    @classmethod
    def of(cls, scheme: str, host: str, port: int) -> Origin:
        default = 443 if scheme == "https" else 80
        shown = host if ":" not in host else f"[{host}]"
        header = shown if port == default else f"{shown}:{port}"
        return cls(scheme, host, port, header.encode("ascii"))

    @classmethod
    def from_address(cls, address: str) -> Origin:
        """``host:port`` (as tasks and Consul report backends) -> a plain-HTTP origin."""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"not a host:port address: {address!r}")
        return cls.of("http", host.strip("[]"), int(port))

    @classmethod
    def from_url(cls, url: str) -> tuple[Origin, str]:
        """A base URL -> its origin and its path prefix without a trailing slash."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls.of(parts.scheme, parts.hostname, port), parts.path.rstrip("/")

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header.decode('ascii')}"
