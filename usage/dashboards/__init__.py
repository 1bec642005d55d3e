"""Usage dashboards: staff overview, per-key page, SVG charts, CSV export and the live feed."""
