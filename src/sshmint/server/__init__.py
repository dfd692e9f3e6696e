"""The sshmint server, read top-down: ``app.py`` (``sshmint serve``), the transports
``ssh/`` and ``http/``, ``runtime.py`` (what they share), ``commands/`` (the one command
tree), ``proxy/`` (the VM proxy), ``auth/`` (the one authentication path, key
permissions), ``config.py``, ``store/`` (the state), ``infra/`` (logs, files) and
``deadline.py`` (one timer for many tasks sharing a time limit).

Depends on the pure core (``sshmint.token``, ``sshmint.sshsig``, ``sshmint.keys``); the core
never imports from here.
"""
