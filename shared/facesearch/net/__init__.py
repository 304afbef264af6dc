"""Outbound HTTP that user input can steer: SSRF-safe fetching of images by URL
(:mod:`.fetch`)."""
