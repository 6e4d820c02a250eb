"""Small applications written with other stream-processing frameworks.

They run as subprocesses against the included broker in ``tests/integration/test_peers.py``,
to show that the broker serves the protocol those frameworks' clients speak. They are
configured through environment variables so that the test can point them at a broker
started on a free port and at state directories under the test's temporary directory.
"""
