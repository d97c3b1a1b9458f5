"""Foundations every layer imports: the table catalog, typed configuration, credential redaction, calendar helpers, demo regions, JVM artefact versions and caps on pandas UDF groups."""
