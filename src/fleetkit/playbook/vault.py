"""ansible-vault's formats 1.1 and 1.2 (AES256) and where its secrets come from.

The envelope is a header line ``$ANSIBLE_VAULT;1.1;AES256`` (``1.2`` adds ``;label``) and the
body hex-encoded twice, wrapped at 80 columns: ``hex(hex(salt) \\n hex(hmac) \\n hex(ciphertext))``.
Keys: PBKDF2-HMAC-SHA256(password, salt, 10000 rounds) -> 80 bytes = AES key (32), HMAC key (32),
CTR counter (16); the plaintext is PKCS7-padded, AES-256-CTR encrypted, the HMAC-SHA256 covers
the ciphertext.

Secrets come from ``--vault-id label@source`` (repeatable; ``prompt`` asks), then
``--vault-password-file`` and the configured ``vault_password_file`` (label ``default``), then
``--ask-vault-pass``. A source that is executable runs as a script whose stdout is the password;
a script named ``*-client[.ext]`` is asked ``--vault-id LABEL``.
"""

from __future__ import annotations

import binascii
import functools
import getpass
import hmac
import os
import subprocess
from collections import UserString
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetkit.playbook.errors import PlaybookError

__all__ = [
    "VaultError",
    "VaultSecret",
    "EncryptedString",
    "is_encrypted",
    "encrypt",
    "decrypt",
    "load_secrets",
    "set_secrets",
    "current_secrets",
]

HEADER = "$ANSIBLE_VAULT"
DEFAULT_IDENTITY = "default"
_ITERATIONS = 10000


class VaultError(PlaybookError):
    """Vault data that cannot be read or decrypted, or a secret that cannot be loaded."""


@dataclass(frozen=True, slots=True)
class VaultSecret:
    """One vault password and the label (vault id) it was given under."""

    vault_id: str
    password: bytes

    def __repr__(self) -> str:  # never show the password
        return f"VaultSecret(vault_id={self.vault_id!r})"


def is_encrypted(data: str | bytes) -> bool:
    """Whether ``data`` starts with the vault envelope header."""
    if isinstance(data, str):
        return data.startswith(HEADER)
    return data.startswith(HEADER.encode())


@functools.cache
def _derive(password: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=80, salt=salt, iterations=_ITERATIONS)
    key = kdf.derive(password)
    return key[:32], key[32:64], key[64:80]


def _unhex(data: bytes) -> bytes:
    try:
        return binascii.unhexlify(data)
    except (binascii.Error, TypeError):
        raise VaultError("Vault format unhexlify error.") from None


def encrypt(
    plaintext: str | bytes,
    password: bytes,
    vault_id: str | None = None,
    salt: bytes | None = None,
) -> str:
    """Encrypt as ``ansible-vault encrypt`` does (1.2 with a label other than ``default``)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    if not password:
        raise VaultError("A vault password must be specified to encrypt data")
    # ansible's salt is 32 random bytes used as they are (an empty salt is refused)
    salt = os.urandom(32) if salt is None else salt
    if not salt:
        raise VaultError("Empty or invalid salt passed to encrypt()")
    key1, key2, iv = _derive(password, salt)
    padder = padding.PKCS7(128).padder()
    enc = Cipher(algorithms.AES(key1), modes.CTR(iv)).encryptor()
    cipher = enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    mac = hmac.new(key2, cipher, "sha256").digest()
    inner = b"\n".join([binascii.hexlify(salt), binascii.hexlify(mac), binascii.hexlify(cipher)])
    body = binascii.hexlify(inner).decode()
    if vault_id and vault_id != DEFAULT_IDENTITY:
        header = f"{HEADER};1.2;AES256;{vault_id}"
    else:
        header = f"{HEADER};1.1;AES256"
    lines = [header] + [body[i : i + 80] for i in range(0, len(body), 80)]
    return "\n".join(lines) + "\n"


def _envelope(text: str) -> tuple[str, bytes, str | None]:
    lines = text.strip().splitlines()
    head = lines[0].strip().split(";")
    if len(head) < 3 or head[0] != HEADER:
        raise VaultError("Vault envelope format error.")
    cipher_name = head[2].strip()
    vault_id = head[3].strip() if len(head) >= 4 else None
    return cipher_name, "".join(s.strip() for s in lines[1:]).encode(), vault_id


def _try(body: bytes, password: bytes) -> bytes | None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, padding
    from cryptography.hazmat.primitives import hmac as chmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        salt_hex, mac_hex, cipher_hex = _unhex(body).split(b"\n", 2)
    except ValueError:
        raise VaultError("Vault vaulttext format error.") from None
    salt, cipher = _unhex(salt_hex), _unhex(cipher_hex)
    key1, key2, iv = _derive(password, salt)
    check = chmac.HMAC(key2, hashes.SHA256())
    check.update(cipher)
    try:
        check.verify(_unhex(mac_hex))
    except InvalidSignature:
        return None
    dec = Cipher(algorithms.AES(key1), modes.CTR(iv)).decryptor()
    unpad = padding.PKCS7(128).unpadder()
    try:
        return unpad.update(dec.update(cipher) + dec.finalize()) + unpad.finalize()
    except ValueError:
        return None


def decrypt(text: str | bytes, secrets: Sequence[VaultSecret] | None = None) -> bytes:
    """Decrypt vaulted ``text`` with the first secret that fits (the labelled one first)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    secrets = current_secrets() if secrets is None else secrets
    if not is_encrypted(text):
        raise VaultError("Input is not vault encrypted data.")
    cipher_name, body, vault_id = _envelope(text)
    if cipher_name != "AES256":
        raise VaultError(f"Cipher {cipher_name!r} could not be found.")
    if not secrets:
        raise VaultError(
            "Attempting to decrypt but no vault secrets found.",
            hint="pass --vault-password-file FILE, --vault-id LABEL@SOURCE or --ask-vault-pass",
        )
    ordered = [s for s in secrets if vault_id and s.vault_id == vault_id]
    ordered += [s for s in secrets if s not in ordered]
    for secret in ordered:
        plain = _try(body, secret.password)
        if plain is not None:
            return plain
    raise VaultError(
        "Decryption failed (no vault secrets were found that could decrypt).",
        hint="check the vault password (or --vault-id label) given for this file",
    )


class EncryptedString(UserString):
    """An inline ``!vault`` value: decrypted on first use, so a bad password fails where used.

    A :class:`~collections.UserString` whose ``data`` is the plaintext, so string methods,
    comparisons, ``str()`` and Jinja filters see the decrypted text.
    """

    def __init__(self, ciphertext: object, source: str = "") -> None:  # noqa: D107
        # UserString's methods build results with ``type(self)(plaintext)``: keep those plain
        text = str(ciphertext)
        self.ciphertext = text if is_encrypted(text) else ""
        self.source = source
        self._plain: str | None = None if self.ciphertext else text

    @property
    def data(self) -> str:
        """The plaintext (raises :class:`VaultError` as ansible does when it cannot)."""
        if self._plain is None:
            try:
                self._plain = decrypt(self.ciphertext).decode("utf-8", "surrogateescape")
            except VaultError as exc:
                where = f" ({self.source})" if self.source else ""
                raise VaultError(
                    f"Attempt to use undecryptable variable: {exc.message}{where}", hint=exc.hint
                ) from None
        return self._plain

    @data.setter
    def data(self, value: str) -> None:
        self._plain = value

    def __repr__(self) -> str:
        return "EncryptedString(<vaulted>)"


# -- secrets -------------------------------------------------------------------------------------

_SECRETS: list[VaultSecret] = []


def set_secrets(secrets: Sequence[VaultSecret]) -> None:
    """Make ``secrets`` the ones YAML loading decrypts with (ansible's VaultSecretsContext)."""
    _SECRETS[:] = list(secrets)


def current_secrets() -> list[VaultSecret]:
    """The secrets set for this run (empty when none were given)."""
    return list(_SECRETS)


def _split_id(slug: str) -> tuple[str | None, str]:
    if "@" not in slug:
        return None, slug
    label, source = slug.split("@", 1)
    return label, source


def _nonempty(password: bytes, msg: str) -> bytes:
    if not password:
        raise VaultError(msg)
    return password


def _read_source(path: str, label: str | None, loaded: list[VaultSecret]) -> bytes:
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        raise VaultError(f"The vault password file {full} was not found")
    if os.path.isdir(full):
        raise VaultError(f"The vault password file provided '{full}' can not be a directory")
    if os.access(full, os.X_OK):
        stem = os.path.splitext(path)[0]
        client = stem.endswith("-client")
        cmd = [full] + (["--vault-id", label] if client and label else [])
        try:
            proc = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE if client else None, check=False
            )
        except OSError as exc:
            kind = "client script" if client else "script"
            raise VaultError(
                f"Problem running vault password {kind} {full} ({exc}). If this is not a "
                "script, remove the executable bit from the file."
            ) from None
        err = proc.stderr or b""
        if client and proc.returncode == 2:
            raise VaultError(
                f"Vault password client script {full} did not find a secret for "
                f"vault-id={label}: {err!r}"
            )
        if proc.returncode != 0:
            if client:
                raise VaultError(
                    f"Vault password client script {full} returned non-zero "
                    f"({proc.returncode}) when getting secret for vault-id={label}: {err!r}"
                )
            raise VaultError(
                f"Vault password script {full} returned non-zero ({proc.returncode}): None"
            )
        return _nonempty(
            proc.stdout.strip(b"\r\n"),
            f"Invalid vault password was provided from script ({full})",
        )
    try:
        with open(full, "rb") as fh:
            data = fh.read().strip()
    except OSError:
        raise VaultError(f"Could not read vault password file {full!r}.") from None
    if is_encrypted(data):
        data = decrypt(data, loaded)
    return _nonempty(data.strip(b"\r\n"), f"Invalid vault password was provided from file ({full})")


def load_secrets(
    vault_ids: Sequence[str] = (),
    password_files: Sequence[str] = (),
    ask_vault_pass: bool = False,
    prompt: Callable[[str], str] = getpass.getpass,
) -> tuple[list[VaultSecret], list[str]]:
    """Secrets in ansible's order; returns them and the warnings ansible prints on the way.

    ``vault_ids`` already holds the configured ``vault_identity_list`` first and
    ``password_files`` the configured ``vault_password_file`` last, as ansible-playbook builds them.
    """
    slugs = list(vault_ids) + [f"{DEFAULT_IDENTITY}@{p}" for p in password_files]
    if ask_vault_pass:
        slugs.append(f"{DEFAULT_IDENTITY}@prompt_ask_vault_pass")
    secrets: list[VaultSecret] = []
    warnings: list[str] = []
    last: VaultError | None = None
    for slug in slugs:
        label, source = _split_id(slug)
        if source in ("prompt", "prompt_ask_vault_pass"):
            ident = label or DEFAULT_IDENTITY
            text = prompt(
                "Vault password: "
                if source == "prompt_ask_vault_pass"
                else f"Vault password ({ident}): "
            )
            if not text:
                raise VaultError("Invalid vault password was provided from prompt")
            secrets.append(VaultSecret(ident, text.encode()))
            continue
        try:
            password = _read_source(source, label, secrets)
        except VaultError as exc:
            # ansible: finding the source is "getting", reading/running it is "loading"
            stage = (
                "getting vault password file"
                if exc.message.startswith("The vault password file")
                else "in vault password file loading"
            )
            warnings.append(f"Error {stage} ({label or DEFAULT_IDENTITY}): {exc.message}")
            last = exc
            continue
        secrets.append(VaultSecret(label or DEFAULT_IDENTITY, password))
    if last is not None and not secrets:
        raise last
    return secrets, warnings
