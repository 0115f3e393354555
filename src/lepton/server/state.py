"""The FastAPI dependencies that reach the running control plane's services."""

from __future__ import annotations

from fastapi import Request

from lepton.control.plane import Control

__all__ = ["get_control"]


def get_control(request: Request) -> Control:
    """The services the app's lifespan opened."""
    control: Control = request.app.state.lepton
    return control
