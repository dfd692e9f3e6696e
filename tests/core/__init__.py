"""The tests of tests/core (a package, so that modules import as ``tests.core.<module>``)."""
