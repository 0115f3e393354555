"""Deployments in the control plane: the replica supervisor, each generation's working folder,
and the checks on pushed photon packages."""
