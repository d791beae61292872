"""Demo data: every region, real districts of three regions, invented institutions and accounts."""
