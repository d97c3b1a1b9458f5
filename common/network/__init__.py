"""Charging-network analytics: public stations and the reliability of their chargers.

Station attributes, KPIs, fleet <-> station matching and coverage gaps; charger status intervals, NEVI uptime,
MTBF/MTTR, session success, the per-site table and the statistical tests on them.
"""
