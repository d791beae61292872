"""Small factories that build test data directly, never from the demo data."""

from __future__ import annotations

import itertools
from typing import Any

from receptions.auth.models import Role, User
from receptions.auth.services import hash_password
from receptions.extensions import db
from receptions.geography.models import District, Region
from receptions.institutions.models import Institution

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def make_region(**values: Any) -> Region:
    n = _n()
    defaults = dict(
        code=f"KZ-T{n}",
        short=f"T{n % 100:02d}"[:3],
        name_kk=f"Сынақ облысы {n}",
        name_ru=f"Тестовая область {n}",
        name_en=f"Test Region {n}",
        timezone="Asia/Almaty",
        kind="region",
    )
    region = Region(**{**defaults, **values})
    db.session.add(region)
    db.session.commit()
    return region


def make_district(region: Region | None = None, **values: Any) -> District:
    n = _n()
    region = region or make_region()
    defaults = dict(
        slug=f"district-{n}",
        name_kk=f"Сынақ ауданы {n}",
        name_ru=f"Тестовый район {n}",
        name_en=f"Test District {n}",
    )
    district = District(region_id=region.id, **{**defaults, **values})
    db.session.add(district)
    db.session.commit()
    return district


def make_institution(district: District | None = None, **values: Any) -> Institution:
    n = _n()
    district = district or make_district()
    defaults = dict(
        type="school",
        name_kk=f"№{n} мектеп",
        name_ru=f"Школа №{n}",
        name_en=f"School No. {n}",
        head_name="Сәуле Тестова",
        head_position_ru="Директор",
        active=True,
    )
    institution = Institution(district_id=district.id, **{**defaults, **values})
    db.session.add(institution)
    db.session.commit()
    return institution


def make_user(
    role: Role = Role.staff,
    *,
    institution: Institution | None = None,
    district: District | None = None,
    region: Region | None = None,
    password: str | None = PASSWORD,
    **values: Any,
) -> User:
    n = _n()
    if role in (Role.staff, Role.head) and institution is None:
        institution = make_institution()
    if role is Role.district_officer and district is None:
        district = make_district()
    if role is Role.region_officer and region is None:
        region = make_region()
    user = User(
        email=values.pop("email", f"user{n}@example.kz"),
        full_name=f"Тест Пайдаланушы {n}",
        role=role.value,
        password_hash=hash_password(password) if password else None,
        institution_id=institution.id if institution else None,
        district_id=district.id if district else None,
        region_id=region.id if region else None,
        **values,
    )
    db.session.add(user)
    db.session.commit()
    return user
