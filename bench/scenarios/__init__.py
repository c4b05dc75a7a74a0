"""The benchmark's scenarios; each returns rows for the result table."""
