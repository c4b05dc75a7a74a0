"""Code every Redress service shares: contracts, bus, database, delivery, settings."""
