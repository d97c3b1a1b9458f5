"""Shared library code for ev-fleet-analytics: config, Spark session, Delta IO and pure transforms."""
