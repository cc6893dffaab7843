"""Custody of the exchange's private keys: envelope encryption under a key-encryption key (KEK) the operator holds.

Each private key is encrypted with a fresh data key (AES-256-GCM, the key's kid as associated data, so a sealed
key cannot be moved to another row); the data key is wrapped with the KEK (AES key wrap, RFC 3394). The database
holds only the sealed form and the KEK's fingerprint: a copy of the database without the KEK cannot sign.

The KEK is 32 random bytes, base64url, from `EXCHANGE_KEY_ENCRYPTION_KEY` or the file
`EXCHANGE_KEY_ENCRYPTION_KEY_FILE`. Only for development (the public base URL is plain http on loopback, as with
`make run` and the tests) does the exchange generate one itself, in the state directory, under a name that says so.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from exchange.settings import Settings

log = logging.getLogger("exchange.custody")

DEVELOPMENT_KEK_NAME = "DEVELOPMENT-ONLY-key-encryption-key"
SEALED_VERSION = 1


class KeyCustodyError(RuntimeError):
    """The exchange cannot reach its private keys (no KEK, the wrong KEK, a damaged sealed key): it must not start."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_kek() -> str:
    """A new KEK in the form the settings take (print it, put it in a secret store)."""
    return _b64(secrets.token_bytes(32))


def _parse_kek(text: str, source: str) -> bytes:
    try:
        raw = _unb64(text.strip())
    except (ValueError, TypeError):
        raw = b""
    if len(raw) != 32:
        raise KeyCustodyError(f"{source} must hold 32 bytes, base64url-encoded (`exchange keys generate-kek`)")
    return raw


def _loopback_http(base_url: str) -> bool:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class KeyEncryptionKey:
    raw: bytes
    source: str

    @property
    def fingerprint(self) -> str:
        """A public name for the KEK (stored with each sealed key, so a wrong KEK is named as such)."""
        return hashlib.sha256(b"exchange-kek:" + self.raw).hexdigest()[:16]

    def seal(self, kid: str, plaintext: bytes) -> str:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(12)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, kid.encode())
        return orjson.dumps({"v": SEALED_VERSION, "kek": self.fingerprint, "dek": _b64(aes_key_wrap(self.raw, data_key)),
                             "nonce": _b64(nonce), "ct": _b64(ciphertext)}).decode()

    def open(self, kid: str, sealed: str) -> bytes:
        envelope = orjson.loads(sealed)
        if envelope.get("kek") != self.fingerprint:
            raise KeyCustodyError(f"key {kid} is sealed under KEK {envelope.get('kek')}, but the configured KEK "
                                  f"({self.source}) is {self.fingerprint}")
        try:
            data_key = aes_key_unwrap(self.raw, _unb64(envelope["dek"]))
            return AESGCM(data_key).decrypt(_unb64(envelope["nonce"]), _unb64(envelope["ct"]), kid.encode())
        except (InvalidUnwrap, InvalidTag, KeyError, ValueError) as exc:
            raise KeyCustodyError(f"key {kid} cannot be opened with the configured KEK ({type(exc).__name__})") \
                from None


def sealed_fingerprint(sealed: str) -> str | None:
    return orjson.loads(sealed).get("kek")


def _development_kek(settings: Settings) -> KeyEncryptionKey:
    path = Path(settings.state_dir) / DEVELOPMENT_KEK_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(generate_kek() + "\n")
        log.warning("generated a development key-encryption key at %s: set EXCHANGE_KEY_ENCRYPTION_KEY(_FILE) "
                    "for any deployment", path)
    return KeyEncryptionKey(_parse_kek(path.read_text(), str(path)), f"development file {path}")


def load_kek(settings: Settings) -> KeyEncryptionKey:
    """The operator's KEK (environment variable, then file); a generated one only for loopback development."""
    if settings.key_encryption_key is not None:
        return KeyEncryptionKey(_parse_kek(settings.key_encryption_key.get_secret_value(),
                                           "EXCHANGE_KEY_ENCRYPTION_KEY"), "EXCHANGE_KEY_ENCRYPTION_KEY")
    if settings.key_encryption_key_file is not None:
        path = Path(settings.key_encryption_key_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise KeyCustodyError(f"EXCHANGE_KEY_ENCRYPTION_KEY_FILE cannot be read ({exc.strerror})") from None
        return KeyEncryptionKey(_parse_kek(text, "EXCHANGE_KEY_ENCRYPTION_KEY_FILE"), f"file {path}")
    if _loopback_http(settings.base_url):
        return _development_kek(settings)
    raise KeyCustodyError("no key-encryption key: set EXCHANGE_KEY_ENCRYPTION_KEY or EXCHANGE_KEY_ENCRYPTION_KEY_FILE "
                          "(a development key is generated only when the exchange runs on plain http on loopback)")
