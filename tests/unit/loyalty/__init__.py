"""Unit tests of loyalty's pure rules."""
