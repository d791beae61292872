"""Every feature's models, imported together so that Alembic and create_all see the whole schema."""

from .audit.models import AuditEvent
from .auth.models import PasswordToken, User
from .geography.models import District, Region
from .institutions.models import Institution

__all__ = ["AuditEvent", "District", "Institution", "PasswordToken", "Region", "User"]
