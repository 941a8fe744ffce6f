"""The emission-factor library: the active set, searchable, and every version."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ..._exceptions import ConfigurationError
from ...calculate import factors as factors_module
from .._problems import ProblemError, responses
from .._state import ServiceDep


def build(read: Any, write: Any) -> APIRouter:
    """The factor routes (reads)."""
    router = APIRouter(prefix="/factors", tags=["factors"], dependencies=[read])

    @router.get(
        "", summary="Factors of the active (or a chosen) set", responses=responses(401, 403)
    )
    def list_factors(
        service: ServiceDep,
        search: Annotated[
            str, Query(max_length=200, description="Text in id, category or activity.")
        ] = "",
        factor_set: Annotated[
            str | None,
            Query(max_length=200, description="NAME, NAME@VERSION or VERSION; default: active."),
        ] = None,
    ) -> dict[str, Any]:
        """Each factor with its set and version, scope, unit, CO2, CH4 and N2O kg per
        unit, CO2e per unit for AR4, AR5 and AR6, and its source."""
        context = service.context
        chosen = context.factor_set
        if factor_set:
            try:
                chosen = factors_module.load_factor_set(factor_set, context.database)
            except ConfigurationError as exc:
                raise ProblemError(404, str(exc)) from exc
        found = factors_module.find_factors(chosen, search)
        return {
            "factor_set": chosen.name,
            "version": chosen.version,
            "label": chosen.label,
            "active": chosen.label == context.factor_set.label,
            "count": len(found),
            "factors": found,
        }

    @router.get("/sets", summary="The factor sets", responses=responses(401, 403))
    def sets(service: ServiceDep) -> dict[str, Any]:
        """The shipped set and every imported version, the active one marked."""
        context = service.context
        found = factors_module.factor_sets(context.database, context.factor_set)
        return {"sets": found}

    return router
