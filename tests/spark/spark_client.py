"""Sends one request to the Spark peer and prints the answer (for test.sh and by hand).

    python tests/spark/spark_client.py '{"op":"ping"}'
    python tests/spark/spark_client.py '{"op":"read","path":"/tmp/t","version":null}'

The peer's address is MEDILAKE_SPARK_ADDR (host:port). Exits 1 when the answer is not ok.
"""

import json
import os
import socket
import sys


def main() -> int:
    host, port = os.environ["MEDILAKE_SPARK_ADDR"].rsplit(":", 1)
    with socket.create_connection((host, int(port))) as s:
        f = s.makefile("rwb")
        f.write((json.dumps(json.loads(sys.argv[1])) + "\n").encode("utf-8"))
        f.flush()
        answer = f.readline().decode("utf-8")
    print(answer, end="")
    return 0 if json.loads(answer).get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
