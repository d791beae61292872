"""The one place where roles and scopes decide who sees and changes what."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask_login import current_user, login_required
from sqlalchemy import ColumnElement, Select, select, true

from .auth.models import Role, User
from .errors import Forbidden, NotInScope
from .extensions import db
from .geography.models import District, Region
from .institutions.models import Institution

F = TypeVar("F", bound=Callable[..., Any])

OFFICERS = (Role.district_officer, Role.region_officer, Role.admin)
INSTITUTION_ROLES = (Role.staff, Role.head)


def role_required(*roles: Role) -> Callable[[F], F]:
    """Signed in, and holding one of `roles` (403 otherwise)."""

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role_enum not in roles:
                raise Forbidden()
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def institution_scope(user: User) -> ColumnElement[bool]:
    """SQL condition on Institution (joined with District) for what `user` may see."""
    role = user.role_enum
    if role is Role.admin:
        return true()
    if role is Role.region_officer:
        return District.region_id == user.region_id
    if role is Role.district_officer:
        return Institution.district_id == user.district_id
    return Institution.id == user.institution_id


def institutions_in_scope(user: User) -> Select[tuple[Institution]]:
    return select(Institution).join(Institution.district).where(institution_scope(user))


def get_institution_in_scope(user: User, institution_id: int) -> Institution:
    institution = db.session.scalars(
        institutions_in_scope(user).where(Institution.id == institution_id)
    ).first()
    if institution is None:
        raise NotInScope()
    return institution


def districts_in_scope(user: User) -> Select[tuple[District]]:
    query = select(District).join(District.region)
    role = user.role_enum
    if role is Role.admin:
        return query
    if role is Role.region_officer:
        return query.where(District.region_id == user.region_id)
    if role is Role.district_officer:
        return query.where(District.id == user.district_id)
    return query.where(District.id == -1)


def regions_in_scope(user: User) -> Select[tuple[Region]]:
    query = select(Region)
    role = user.role_enum
    if role is Role.admin:
        return query
    if role is Role.region_officer:
        return query.where(Region.id == user.region_id)
    if role is Role.district_officer:
        return query.join(Region.districts).where(District.id == user.district_id)
    return query.where(Region.id == -1)


def get_district_in_scope(user: User, district_id: int) -> District:
    district = db.session.scalars(
        districts_in_scope(user).where(District.id == district_id)
    ).first()
    if district is None:
        raise NotInScope()
    return district


def get_region_in_scope(user: User, region_id: int) -> Region:
    region = db.session.scalars(regions_in_scope(user).where(Region.id == region_id)).first()
    if region is None:
        raise NotInScope()
    return region


# Which roles a user may hand out when inviting, by their own role.
GRANTABLE_ROLES: dict[Role, tuple[Role, ...]] = {
    Role.admin: tuple(Role),
    Role.region_officer: (Role.region_officer, Role.district_officer, Role.head, Role.staff),
    Role.district_officer: (Role.head, Role.staff),
    Role.head: (Role.staff,),
    Role.staff: (),
}


def grantable_roles(user: User) -> tuple[Role, ...]:
    return GRANTABLE_ROLES[user.role_enum]
