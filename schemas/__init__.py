"""Marshmallow schemas of the HTTP shapes (never of the storage format)."""
