"""Rollcall's domain: everything app.py wires to routes and events."""
