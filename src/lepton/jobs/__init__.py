"""Jobs: the scheduler that reconciles them, the runner that executes them, and tracking."""
