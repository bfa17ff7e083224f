"""The functions that run jobs, one module per family. Which function runs which kind, and where,
is workers.kinds' table."""
