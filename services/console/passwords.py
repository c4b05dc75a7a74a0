"""Operator password hashes: scrypt with a random salt, in one self-describing string.

Format: ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``. Hash a password for the settings with
``python -m services.console.passwords`` (it asks twice and prints the string).
"""

import base64
import getpass
import hashlib
import hmac
import os
import sys

SCHEME = "scrypt"
DEFAULT_N, DEFAULT_R, DEFAULT_P = 2**14, 8, 1
_KEY_BYTES = 32
_MAX_MEMORY = 128 * 1024 * 1024


class BadHash(ValueError):
    """A stored hash string that is not in the expected format."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES, maxmem=_MAX_MEMORY)


def hash_password(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """A salted scrypt hash string for ``password``."""
    salt = os.urandom(16)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(_derive(password, salt, n, r, p))}"


def parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """The parameters, salt and key of a hash string; raises BadHash saying what is wrong."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise BadHash("expected scrypt$<n>$<r>$<p>$<salt>$<hash> (make one with python -m services.console.passwords)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError as exc:
        raise BadHash(f"unreadable scrypt parameters or base64: {exc}") from None
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or len(salt) < 8 or len(key) < 16:
        raise BadHash("scrypt parameters out of range (n a power of two >= 1024, r 1-64, p 1-16, salt >= 8 bytes)")
    return n, r, p, salt, key


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the hash string (constant-time comparison)."""
    n, r, p, salt, key = parse_hash(encoded)
    return hmac.compare_digest(_derive(password, salt, n, r, p), key)


def main() -> None:
    """Ask for a password twice and print its hash, for CONSOLE_OPERATORS."""
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise SystemExit("the two passwords differ")
    if len(password) < 8:
        raise SystemExit("use at least 8 characters")
    print(hash_password(password))


if __name__ == "__main__":
    main()
