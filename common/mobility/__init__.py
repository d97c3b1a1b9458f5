"""Mobility analytics over cleaned telematics, as pure DataFrame transforms (the jobs do the IO).

Charging events, locations and sites (`charging`), fleet hotspots (`hotspots`), fleet KPIs and
pay-as-you-drive billing (`kpis`), vehicle home locations (`residence`) and driver risk (`risk`).
"""
