"""Runs the real ixoncdkingress, unchanged, as the reference side of tests/differential.rs.

`python -m ixoncdkingress` in development mode, with two stand-ins the test machine needs:
mongomock instead of the MongoDB container the SDK would start with docker (one client for the
whole run, so documents persist between calls as in a database), and the listening socket on a
free port, which is printed as `listening on <port>` once the server can accept.

Run from the app folder with CBC_PATH=./functions, as IXON's own workspace runs it; the app
folder is put first on the import path, as `python -m` puts it there.
"""

import os
import sys
import wsgiref.simple_server

sys.path[0] = os.getcwd()

import mongomock  # noqa: E402
from ixoncdkingress.__main__ import main  # noqa: E402
from ixoncdkingress.webserver import utils, wsgi  # noqa: E402

_CLIENT = mongomock.MongoClient()
utils.MongoClient = lambda *args, **kwargs: _CLIENT
wsgi.setup_mongo_container = lambda config: None

_make_server = wsgiref.simple_server.make_server


def _make_server_and_say_where(host, port, app, *args, **kwargs):
    server = _make_server(host, port, app, *args, **kwargs)
    print(f"listening on {server.server_address[1]}", flush=True)
    return server


wsgiref.simple_server.make_server = _make_server_and_say_where

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
