"""Administrators' pages: accounts and the audit log."""
