"""Finding regions and districts by the codes and slugs that public addresses carry."""

from __future__ import annotations

from flask import abort
from sqlalchemy import select

from ..extensions import db
from .models import District, Region


def district_or_404(code: str, slug: str) -> District:
    """The district at /regions/<code>/<slug> (code case-insensitive), or a 404."""
    district = db.session.scalars(
        select(District)
        .join(District.region)
        .where(Region.code == code.upper(), District.slug == slug)
    ).first()
    if district is None:
        abort(404)
    return district
