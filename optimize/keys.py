"""API keys of ``kiln serve``: bearer tokens with a role, stored only as SHA-256 hashes.

The keys file is YAML: ``keys: [{id, role, sha256, created_utc}]``. A token is shown once, when created; it is
``kiln_<id>_<secret>``, so a log line or an error may name the key's ``id`` without revealing the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from optimize.errors import KilnError
from optimize.fileio import atomic_write, campaign_lock

ROLES = ("read", "write")


class KeysError(KilnError):
    """The keys file is unreadable or malformed."""


@dataclass(frozen=True)
class Key:
    id: str
    role: str
    sha256: str
    created_utc: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_keys(path: Path) -> list[Key]:
    """The keys of a keys file (none if it does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        keys = [Key(**k) for k in doc.get("keys", [])]
    except (OSError, yaml.YAMLError, TypeError, AttributeError) as e:
        raise KeysError(f"{path}: not a kiln keys file ({e}); create keys with `kiln keys create`") from None
    for k in keys:
        if k.role not in ROLES:
            raise KeysError(f"{path}: key {k.id!r} has role {k.role!r}; roles are {', '.join(ROLES)}")
    return keys


def create_key(path: Path, role: str) -> str:
    """Add a key of ``role`` to the keys file (created if absent); return its token (stored only hashed)."""
    from optimize.campaign import utc_now

    if role not in ROLES:
        raise KeysError(f"role {role!r}: use one of {', '.join(ROLES)}")
    path = Path(path)
    key_id = secrets.token_hex(4)
    token = f"kiln_{key_id}_{secrets.token_urlsafe(32)}"
    with campaign_lock(path.parent):
        keys = load_keys(path)
        keys.append(Key(key_id, role, _digest(token), utc_now()))
        body = yaml.safe_dump({"keys": [vars(k) for k in keys]}, sort_keys=False)
        atomic_write(path, body.encode("utf-8"))
    path.chmod(0o600)  # hashes only, but no one else needs to read them
    return token


def role_of(keys: list[Key], token: str) -> str | None:
    """The role of the key this token belongs to, or ``None``; compares hashes in constant time."""
    digest = _digest(token)
    role = None
    for k in keys:
        if hmac.compare_digest(k.sha256, digest):
            role = k.role
    return role


class KeyRing:
    """The keys of a keys file as a server sees them: read again when the file changes, so a key created (or
    removed) while ``kiln serve`` runs counts at once."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._keys: list[Key] = []
        self.keys()

    def keys(self) -> list[Key]:
        """The keys now; none (every request refused) while the file is missing."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._keys, self._stamp = load_keys(self.path), stamp
        return self._keys

    def role_of(self, token: str) -> str | None:
        return role_of(self.keys(), token)
