"""The database layer's public names (the layer itself is the :mod:`carbonlake.db` package).

Kept so that ``from carbonlake.database import Database`` goes on working; the names and
their list are :mod:`carbonlake.db`'s own.
"""

from __future__ import annotations

from .db import *  # noqa: F403
from .db import __all__ as __all__
