"""JSON Web Tokens for the tests, made without a JWT library: HS256 with
Python's hmac, RS256/ES256 signed by the openssl CLI (ES256's DER signature
converted to JOSE's raw r||s)."""
import base64
import hashlib
import hmac
import json
import os
import subprocess


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def keypair(directory, name, kind):
    """(private key path, public key path) made with openssl genpkey."""
    priv = os.path.join(directory, name + ".key")
    pub = os.path.join(directory, name + ".pub")
    opt = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] if kind == "rsa" else \
        ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "genpkey", *opt, "-out", priv], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True, capture_output=True)
    return priv, pub


def _der_to_raw(der):
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


def mint(alg, claims, secret=None, key=None, header=None):
    h = header or {"alg": alg, "typ": "JWT"}
    signing = b64(json.dumps(h, separators=(",", ":")).encode()) + "." + \
        b64(json.dumps(claims, separators=(",", ":")).encode())
    if alg == "HS256":
        sig = hmac.new(secret.encode() if isinstance(secret, str) else secret, signing.encode(),
                       hashlib.sha256).digest()
    elif alg in ("RS256", "ES256"):
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing.encode(),
                             check=True, capture_output=True).stdout
        if alg == "ES256":
            sig = _der_to_raw(sig)
    else:
        sig = b""
    return signing + "." + b64(sig)
