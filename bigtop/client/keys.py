"""CurveZMQ key pairs for TCP endpoints: writing them (``bigtopctl keygen``)
and reading a client's.

The daemon has a server pair (``server_key`` = its ``.key_secret`` file)
and accepts the clients whose public ``.key`` files sit in its
``authorized_keys`` directory; a client passes its own ``.key_secret`` and
the server's public ``.key``.
"""

from __future__ import annotations

import os

from .errors import CallError


def generate(directory: str, name: str) -> tuple[str, str]:
    """Write NAME.key (public) and NAME.key_secret (0600) in directory;
    refuses to overwrite. Returns both paths."""
    import zmq.auth

    os.makedirs(directory, exist_ok=True)
    public = os.path.join(directory, f"{name}.key")
    secret = os.path.join(directory, f"{name}.key_secret")
    for path in (public, secret):
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; remove it first or pick another name")
    old = os.umask(0o077)
    try:
        zmq.auth.create_certificates(directory, name)
    finally:
        os.umask(old)
    os.chmod(public, 0o644)
    return public, secret


def load_keys(key_file: str) -> tuple[bytes, bytes]:
    """A client key pair from ``bigtopctl keygen`` (the ``.key_secret`` file)."""
    import zmq.auth

    public, secret = zmq.auth.load_certificate(key_file)
    if secret is None:
        raise CallError(f"{key_file} holds no secret key (use the .key_secret file)")
    return public, secret


def load_public(key_file: str) -> bytes:
    """The public key in a ``.key`` (or ``.key_secret``) file: the server's."""
    import zmq.auth

    return zmq.auth.load_certificate(key_file)[0]
