"""bigtop-wsgi: serve a WSGI or ASGI application on a listening socket that
the process inherited from bigtopd (or systemd), through a well-kept server
library chosen with ``--backend``. The successor to Circus's Chaussette.

Nothing here imports :mod:`bigtop.core`: a front end only sees the socket
the daemon passed and the environment it set (``LISTEN_FDS``,
``NOTIFY_SOCKET``). Server libraries are imported only by the backend that
needs them, so ``bigtop-wsgi --help`` stays fast and a missing optional
library is reported by name.
"""
