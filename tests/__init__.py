"""The test suite (see tests/support/ for the shared helpers and fixtures)."""
