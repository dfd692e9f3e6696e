"""The tests of tests/client (a package, so that modules import as ``tests.client.<module>``)."""
