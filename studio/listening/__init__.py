"""Blind listening tests: A/B forced choice and MOS (ACR 1-5) sessions, rater links, votes in
SQLite, and the statistics a reviewer would accept.

tables   the ORM rows (sessions, systems, items, stimuli, raters, assignments, votes)
audio    decoding, resampling, loudness matching, metadata-free WAVs, trap degradation
sessions creating sessions from audio folders, rater links and their stored assignments
votes    what a rater's token may do: consent, the current trial, recording a vote
stats    MOS intervals, sign tests, position bias, Bradley-Terry, rater screening (numpy/scipy)
results  votes -> statistics, screening, plots and CSV for the owner
web      the rater pages and JSON routes (FastAPI), installed beside the studio
"""
