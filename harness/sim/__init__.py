"""Simulated LLM engine: an OpenAI-compatible server timed by a continuous-batching step model.

model.py contains the step-time arithmetic, scheduler.py the batching loop, app.py the HTTP
routes and server.py the command line. A server runs one role (roles.py): aggregated
(prefills and decodes its own requests), prefill or decode. router/ contains the router
that sends each request of a disaggregated run to a prefill worker, waits for the KV
transfer, then streams from a decode worker.
"""
