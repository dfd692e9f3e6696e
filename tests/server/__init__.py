"""The tests of tests/server (a package, so that modules import as ``tests.server.<module>``)."""
