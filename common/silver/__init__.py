"""Silver-layer transforms: telematics cleaning rules (`cleaning`), device reporting modes (`devices`) and stops, trips and ~1 km energy segments (`trips`)."""
