"""The control plane: FastAPI app, auth, audit, and one router module per resource."""
