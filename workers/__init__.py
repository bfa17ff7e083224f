"""The Huey queue: configuration, tasks, the consumer entry point. A task reads what it needs
from studio/, runs models/, and writes results and progress back through studio/."""
