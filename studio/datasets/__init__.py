"""Datasets: clips imported from files, folders, zips and corpus layouts; non-destructive trims;
transcripts with edit history; prepared versions of 24 kHz segments; the report and the export.
Other rooms read prepared data through studio.datasets.api only."""
