"""The sshmint server: SSH command interface, HTTP API, VM proxy, storage.

Depends on the pure core (``sshmint.token``, ``sshmint.sshsig``, ``sshmint.keys``); the core
never imports from here.
"""
