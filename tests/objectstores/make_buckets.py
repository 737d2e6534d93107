"""Create the test bucket on the S3 emulator and the test container on Azurite.

usage: make_buckets.py <s3 endpoint> <azure blob endpoint> <name>

S3 (moto): an unsigned `PUT /<name>` (moto does not check signatures). Azure (Azurite):
`PUT /<account>/<name>?restype=container` signed with SharedKey for the public emulator
account (Azurite refuses unsigned requests with 403). "Already exists" counts as success.
Standard library only. Exits non-zero with one line on stderr on failure.
"""

import base64
import hashlib
import hmac
import sys
import urllib.error
import urllib.request
from email.utils import formatdate

# The documented, public Azurite account and key (not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
API_VERSION = "2021-08-06"


def put(url: str, headers: dict) -> int:
    # No body object: urllib would add a Content-Type, which SharedKey signs.
    request = urllib.request.Request(url, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def s3_bucket(endpoint: str, name: str) -> None:
    status = put(f"{endpoint}/{name}", {"Content-Length": "0"})
    if status not in (200, 409):
        sys.exit(f"make_buckets: creating S3 bucket {name} at {endpoint}: HTTP {status}")


def azure_container(endpoint: str, name: str) -> None:
    date = formatdate(usegmt=True)
    # SharedKey string-to-sign: verb, 11 empty standard headers (Content-Length is empty
    # when 0), canonicalized x-ms-* headers, canonicalized resource.
    to_sign = "\n".join(
        ["PUT"] + [""] * 11
        + [f"x-ms-date:{date}", f"x-ms-version:{API_VERSION}",
           f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"]
    )
    signature = base64.b64encode(
        hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    status = put(
        f"{endpoint}/{ACCOUNT}/{name}?restype=container",
        {
            "x-ms-date": date,
            "x-ms-version": API_VERSION,
            "Content-Length": "0",
            "Authorization": f"SharedKey {ACCOUNT}:{signature}",
        },
    )
    if status not in (201, 409):
        sys.exit(f"make_buckets: creating Azure container {name} at {endpoint}: HTTP {status}")


def main() -> None:
    s3_endpoint, azure_endpoint, name = sys.argv[1:4]
    s3_bucket(s3_endpoint, name)
    azure_container(azure_endpoint, name)


if __name__ == "__main__":
    main()
