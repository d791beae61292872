"""Institutions: schools, kindergartens, colleges, polyclinics, hospitals, social-service centres."""
