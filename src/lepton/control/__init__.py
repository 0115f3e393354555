"""The control plane's business logic: one service per resource, and the reconcilers beside the
services they reconcile. ``Control`` (:mod:`lepton.control.plane`) holds them all."""
