"""Intake: one front door for every channel, turning native payloads into normalized, classified complaints."""
