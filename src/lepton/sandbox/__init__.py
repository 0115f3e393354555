"""How user code is started: every job runner and serving replica runs in a bubblewrap sandbox
(when the machine has one) with an environment built from an allow-list, no view of
``LEPTON_HOME`` or the invoking user's home, and its own working folder. See
:mod:`lepton.sandbox.policy` and ``docs/security.md``."""

from lepton.sandbox.policy import Sandbox, user_environment

__all__ = ["Sandbox", "user_environment"]
