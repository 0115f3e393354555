"""The ``lepton`` command: a Typer app that talks to the control plane through the SDK only."""
