"""Rows between environments: sync-data (plan, export, apply, undo, diff) and recover-rows (and its cascades)."""
