"""Schedules: open-door days and head's receptions, their sessions and bookable slots."""
