"""Fixtures of the several-nodes tests (``tests/support/cluster.py``): ``cluster`` (two
nodes on one PostgreSQL database with one host key), ``nginx_lb`` and ``haproxy_lb`` (the
example balancers in front of them), ``member`` (a user of the cluster)."""

from tests.support.cluster import *  # noqa: F403
