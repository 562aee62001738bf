"""Makes the signed ingress call ixoncdkingress accepts in production mode.

In production mode ixoncdkingress (0.0.x) takes only `POST /` with a JSON body naming the
function (`"name": "functions.hello_world"`), a `created_on` timestamp at most 60 s old and an
`Authorization: signature <hex>` header: an Ed25519 signature of the exact body, checked
against the public keys in CBC_SIGNATURE_PUBLIC_KEYS. Run with the peer's virtualenv (it has
`cryptography`).

usage:
    signed_request.py keygen KEY_DIR
        writes KEY_DIR/signing-key.pem (private) and KEY_DIR/signing-key.pub.pem, once
    signed_request.py sign KEY_DIR ENTRY [--created-on ISO] [--arguments JSON]
        [--context JSON] [--internal-config JSON]
        prints {"body": "...", "authorization": "signature ..."} as JSON
"""

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

PRIVATE = "signing-key.pem"
PUBLIC = "signing-key.pub.pem"


def keygen(key_dir: Path) -> None:
    key_dir.mkdir(parents=True, exist_ok=True)
    if (key_dir / PRIVATE).exists() and (key_dir / PUBLIC).exists():
        return
    key = ed25519.Ed25519PrivateKey.generate()
    (key_dir / PRIVATE).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (key_dir / PUBLIC).write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def sign(key_dir: Path, entry: str, created_on: str | None, arguments: dict | None = None,
         context: dict | None = None, internal_config: dict | None = None) -> dict:
    key = serialization.load_pem_private_key((key_dir / PRIVATE).read_bytes(), None)
    body = json.dumps(
        {
            "name": entry,
            "arguments": arguments or {},
            "config": {},
            "context": context or {},
            "internalConfig": internal_config or {},
            "created_on": created_on or datetime.now(timezone.utc).isoformat(),
        }
    ).encode("utf-8")
    return {
        "body": body.decode("utf-8"),
        "authorization": "signature " + key.sign(body).hex(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    keygen_parser = commands.add_parser("keygen")
    keygen_parser.add_argument("key_dir", type=Path)
    sign_parser = commands.add_parser("sign")
    sign_parser.add_argument("key_dir", type=Path)
    sign_parser.add_argument("entry")
    sign_parser.add_argument("--created-on")
    sign_parser.add_argument("--arguments", type=json.loads, help="the call's arguments, a JSON object")
    sign_parser.add_argument("--context", type=json.loads,
                             help="the call's context (user, company, ...), a JSON object")
    sign_parser.add_argument("--internal-config", type=json.loads,
                             help="the call's internalConfig (e.g. dbConfig), a JSON object")
    args = parser.parse_args()

    if args.command == "keygen":
        keygen(args.key_dir)
    else:
        json.dump(sign(args.key_dir, args.entry, args.created_on, args.arguments, args.context,
                       args.internal_config), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
