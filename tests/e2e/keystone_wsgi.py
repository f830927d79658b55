"""Serve Keystone's WSGI application on one loopback address, threaded (run with the python of
.venv-keystone; started by keystone_support.py).

    python keystone_wsgi.py HOST PORT KEYSTONE_CONF

Keystone reads its configuration files from OS_KEYSTONE_CONFIG_FILES and parses sys.argv with
oslo.config, so the arguments are taken out of sys.argv before Keystone is imported.
"""

import os
import socketserver
import sys
import wsgiref.simple_server


class QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        sys.stderr.write("keystone-wsgi: %s\n" % (format % args))


class ThreadingServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    host, port, conf = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = conf
    sys.argv = sys.argv[:1]
    from keystone.wsgi.api import application  # noqa: PLC0415 (after sys.argv is cleared)

    server = wsgiref.simple_server.make_server(
        host, port, application, server_class=ThreadingServer, handler_class=QuietHandler
    )
    sys.stderr.write(f"keystone-wsgi: serving on {host}:{port}\n")
    sys.stderr.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
