"""Imports every module that defines tables, so Base.metadata holds the whole schema.
Each room that adds tables adds its import here and a migration in studio/migrations/versions/."""
from studio.db import Base  # noqa: F401
from studio import jobs  # noqa: F401
from studio import voices  # noqa: F401
from studio import training as training_tables  # noqa: F401
from studio.datasets import models as dataset_models  # noqa: F401
from studio.listening import tables as listening_tables  # noqa: F401
from studio.experiments import tables as experiments_tables  # noqa: F401

metadata = Base.metadata
