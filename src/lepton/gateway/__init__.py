"""The gateway: every deployment at one stable address, ``http://HOST:PORT/d/<name>/...``.

A data-plane process (``python -m lepton.gateway``), never the control plane: it proxies HTTP/1.1
to the deployment's ready replicas wherever they run, holds a request while a scaled-to-zero
deployment starts a replica, splits traffic for a canary, and reports its load to the control
plane, whose supervisor scales on it. See ``proxy.py`` (the data path), ``table.py`` (routes,
balancing, counters) and ``process.py`` (the process: its table, its reports).
"""
