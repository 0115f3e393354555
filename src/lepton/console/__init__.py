"""The web console: the platform in a browser, served by the control plane at ``/``.

Pages are rendered on the server from Jinja2 templates (autoescaped) and call the same
services as the API (:class:`lepton.control.plane.Control`), never queries of their own. Live
parts (a running job's log and metrics) refresh with htmx, one vendored file; everything reads
without JavaScript. Charts are SVG drawn on the server. See docs/console.md.
"""

from lepton.console.views import router

__all__ = ["router"]
