"""Fakes shared by the test suites: model endpoints and the claude CLI."""
