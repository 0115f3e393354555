"""Built-in algorithm library: one module per family, plus AutoML."""
