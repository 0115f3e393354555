"""The replica runtime: one process serving a registered model or a photon over HTTP.

Started by the control plane as ``python -m lepton.serving`` (see ``__main__``). Importing this
package is cheap: the model, pandas and uvicorn load only when a replica starts.
"""

from __future__ import annotations

__all__: list[str] = []
