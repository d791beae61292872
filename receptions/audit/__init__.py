"""Audit trail of staff writes and views of personal data."""
