"""Public pages that belong to no single feature: home, regions, health checks, language."""
