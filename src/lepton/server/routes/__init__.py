"""One router per resource; :data:`ROUTERS` is the order the app mounts them in.

A route parses the request, authorises the caller, calls one service function of
:mod:`lepton.control` and shapes the answer; it holds no business rule, opens no session and
imports no store model (``tests/unit/test_layers.py`` checks).
"""

from lepton.server.routes import (
    audit,
    blobs,
    datasets,
    deployments,
    gateway,
    jobs,
    lineage,
    models,
    photons,
    secrets,
    system,
    tokens,
    workspaces,
)

ROUTERS = [
    system.router,
    workspaces.router,
    tokens.router,
    secrets.router,
    audit.router,
    blobs.router,
    datasets.router,
    jobs.router,
    models.router,
    lineage.router,
    deployments.router,
    photons.router,
    gateway.router,
]
