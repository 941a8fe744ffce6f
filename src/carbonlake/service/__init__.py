"""``carbonlake serve``: the HTTP API and the web page over one workspace.

Needs the ``server`` extra (``pip install 'carbonlake[server]'``). See docs/service.md.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
