"""The tests of tests/http (a package, so that modules import as ``tests.http.<module>``)."""
