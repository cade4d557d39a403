"""Router of the simulated engine's disaggregated runs: prefill worker, KV transfer, decode worker.

cli.py parses the flags, app.py contains the OpenAI-compatible routes, relay.py the path
of one request through the workers, pool.py the choice of worker and transfer.py the
KV transfer time.
"""
