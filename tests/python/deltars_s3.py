#!/usr/bin/env python3
"""delta-rs as the second engine on an S3 table (the mixed-engines test in
tests/tests/object_stores.rs).

Usage: deltars_s3.py append TABLE_URL FIRST_ID COMMITS ROWS_PER_COMMIT
       deltars_s3.py read TABLE_URL

  append  COMMITS appends with write_deltalake(mode="append"), rows
          id = FIRST_ID, FIRST_ID + 1, ... (val = id * 10, part = "p<id mod 3>"),
          ROWS_PER_COMMIT per commit; prints one line per commit: the version.
  read    prints one JSON object: {"version": V, "rows": [[id, val, part], ...]}
          with the rows sorted by id.

The S3 endpoint and credentials come from the environment that
tests/objectstores/emulators.sh exports (AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP), passed to delta-rs
as storage options, with aws_conditional_put=etag spelled out: delta-rs commits
with a create-only put (If-None-Match: *), atomic against other engines, and
needs no locking provider (AWS_S3_LOCKING_PROVIDER) and no
AWS_S3_ALLOW_UNSAFE_RENAME. (Since delta-rs 0.23, delta-io/delta-rs#3091, that
is its default for S3 anyway; its "writing to S3 with a locking provider" page
predates it.)
"""

from __future__ import annotations

import json
import os
import sys


def storage_options() -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_ALLOW_HTTP": "true",
        "aws_conditional_put": "etag",
    }


def append(url: str, first: int, commits: int, per_commit: int) -> None:
    import pyarrow as pa
    from deltalake import CommitProperties, DeltaTable, write_deltalake

    options = storage_options()
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("val", pa.int64()),
            pa.field("part", pa.string()),
        ]
    )
    for c in range(commits):
        ids = list(range(first + c * per_commit, first + (c + 1) * per_commit))
        data = pa.table(
            {
                "id": ids,
                "val": [i * 10 for i in ids],
                "part": [f"p{i % 3}" for i in ids],
            },
            schema=schema,
        )
        # Many more retries than delta-rs's default: medilake's writers may take a dozen
        # versions in a row while delta-rs rebases.
        write_deltalake(
            url,
            data,
            mode="append",
            storage_options=options,
            commit_properties=CommitProperties(max_commit_retries=100),
        )
        print(DeltaTable(url, storage_options=options).version(), flush=True)


def read(url: str) -> None:
    from deltalake import DeltaTable

    dt = DeltaTable(url, storage_options=storage_options())
    table = dt.to_pyarrow_table(columns=["id", "val", "part"])
    rows = sorted(zip(*(table.column(c).to_pylist() for c in ("id", "val", "part"))))
    print(json.dumps({"version": dt.version(), "rows": rows}))


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == "append":
        append(args[1], int(args[2]), int(args[3]), int(args[4]))
    elif len(args) == 2 and args[0] == "read":
        read(args[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
    # Leave without interpreter teardown: about one run in three otherwise aborts after
    # the output is complete ("terminate called without an active exception", a native
    # thread of the S3 stack still running at exit), which would fail the caller for
    # nothing. Everything this script produces is on stdout, flushed here.
    sys.stdout.flush()
    os._exit(0)
