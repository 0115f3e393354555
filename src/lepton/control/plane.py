"""The control plane's services over one context: what the API routes, the console and the
reconcilers call, and nothing else opens the store.

Each service owns its resource's transactions, numbering, content references, deletion rules
and audit facts. Where one resource's rule depends on another (a model version a deployment
serves cannot be deleted), the dependent service adds a check to the other's ``users`` list,
so each rule is written once, beside the resource that causes it.
"""

from __future__ import annotations

from lepton.control.audit import AuditService
from lepton.control.content import Content
from lepton.control.context import Context
from lepton.control.datasets import DatasetService
from lepton.control.deployments import DeploymentService
from lepton.control.gateway import GatewayService
from lepton.control.jobs import JobService
from lepton.control.lineage import LineageService
from lepton.control.models import ModelService
from lepton.control.photons import PhotonService
from lepton.control.secrets import SecretService
from lepton.control.tokens import TokenService
from lepton.control.uploads import UploadService
from lepton.control.workspaces import WorkspaceService

__all__ = ["Control"]


class Control:
    """Every service of one control plane."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.content = Content(ctx)
        self.tokens = TokenService(ctx)
        self.workspaces = WorkspaceService(ctx, self.tokens)
        self.audit = AuditService(ctx)
        self.secrets = SecretService(ctx)
        self.uploads = UploadService(ctx, self.content)
        self.datasets = DatasetService(ctx, self.content)
        self.models = ModelService(ctx, self.content, self.datasets)
        self.jobs = JobService(
            ctx, self.content, self.tokens, self.datasets, self.models, self.uploads, self.secrets
        )
        self.photons = PhotonService(ctx, self.content)
        self.deployments = DeploymentService(
            ctx, self.tokens, self.models, self.photons, self.secrets
        )
        self.lineage = LineageService(ctx, self.datasets, self.models)
        self.gateway = GatewayService(ctx, self.deployments)
