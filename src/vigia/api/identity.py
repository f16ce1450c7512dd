"""Who the presented key is: what a client (the dashboard) shows and hides by."""

from __future__ import annotations

from fastapi import APIRouter

from vigia.access import ROLE_PERMISSIONS
from vigia.api.auth import Reader
from vigia.api.errors import ERRORS
from vigia.api.schemas import IdentityModel

router = APIRouter(tags=["identity"])


@router.get("/me", response_model=IdentityModel, responses=ERRORS, summary="The presented key")
async def me(key: Reader) -> IdentityModel:
    """The key's tenant, role and permissions (never its secret). Every role may ask."""
    return IdentityModel(
        key_id=key.id,
        name=key.name,
        tenant=key.tenant,
        role=key.role.value,
        permissions=sorted(permission.value for permission in ROLE_PERMISSIONS[key.role]),
    )
