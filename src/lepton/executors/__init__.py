"""Where jobs run: the Executor protocol and its local (subprocess) implementation."""
