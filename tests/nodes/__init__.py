"""Several nodes on one PostgreSQL database (docs/operations.md#several-nodes): two real
``sshmint serve`` processes behind real load balancers run from ``examples/``."""
