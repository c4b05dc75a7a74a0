"""Unit tests of routing's pure rules."""
