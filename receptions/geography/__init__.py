"""Regions and districts of Kazakhstan."""
