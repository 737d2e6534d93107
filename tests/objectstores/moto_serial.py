"""moto's S3 server, single-threaded, on a free loopback port.

usage: moto_serial.py <port file>

Stock `moto_server` serves with werkzeug's threaded server, and moto's If-None-Match check
(does the key exist?) and the write are not under one lock, so two racing conditional puts
can both win. Served by one thread (and HTTP/1.0, one request per connection, which werkzeug
uses for a non-threaded server) every request runs alone, so check-then-write is atomic.

Binds 127.0.0.1 on a port the kernel picks, writes that port to <port file> (the socket is
listening by then; requests queue until the loop starts), and serves until SIGTERM.
Imports moto internals: keep moto pinned (requirements.txt).
"""

import os
import signal
import sys

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


def main() -> None:
    port_file = sys.argv[1]
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler
    )
    os.environ["MOTO_PORT"] = str(server.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = port_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{server.port}\n")
    os.replace(tmp, port_file)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
