"""Akimat roll-ups: one reporting service behind every dashboard, ranking and download."""
