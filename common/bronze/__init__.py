"""The ingest stage: raw files mapped onto the canonical schemas and validated (`ingest`), planned against the file ledger (`plan`), committed to bronze, quarantine and audit tables (`load`)."""
