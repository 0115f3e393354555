"""The Python SDK: a typed client of the control plane's HTTP API."""

from lepton.client.client import Client

__all__ = ["Client"]
