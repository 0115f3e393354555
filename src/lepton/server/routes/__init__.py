"""One router per resource; :data:`ROUTERS` is the order the app mounts them in."""

from lepton.server.routes import (
    audit,
    blobs,
    datasets,
    jobs,
    lineage,
    models,
    system,
    tokens,
    workspaces,
)

ROUTERS = [
    system.router,
    workspaces.router,
    tokens.router,
    audit.router,
    blobs.router,
    datasets.router,
    jobs.router,
    models.router,
    lineage.router,
]
