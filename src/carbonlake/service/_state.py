"""What every route of one service shares: the workspace, the pipeline, the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from ..context import Context
from ..executions import Pipeline
from ..settings import Settings
from ._runner import Runner

if TYPE_CHECKING:
    from ._security import AdminKey


@dataclass
class Service:
    """One running service over one workspace."""

    settings: Settings
    context: Context
    pipeline: Pipeline
    runner: Runner
    api_keys: list[str]
    generated_key: str | None
    """The key made for this run when ``[server] api_keys`` is empty (printed by `serve`)."""
    admin_keys: list[AdminKey] = field(default_factory=list)
    """``[server] admin_keys``: they may also delete records."""

    @property
    def max_upload_bytes(self) -> int:
        """``[server] max_upload_mb`` in bytes."""
        return int(self.settings.server.max_upload_mb * 1024 * 1024)


def get_service(request: Request) -> Service:
    """The service of the app that is answering ``request``."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
"""A route parameter that receives the service."""
