"""Modules a test server imports before it starts (``SSHMintServer(preload=...)``): each
changes the server process for one test and is named
``"tests.support.preloads.<module>"``. The product never imports them."""
