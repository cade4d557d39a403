"""Simulated LLM engine: an OpenAI-compatible server timed by a continuous-batching step model.

model.py contains the step-time arithmetic, scheduler.py the batching loop, app.py the HTTP
routes and server.py the command line. Only the aggregated role exists so far: one server
prefills and decodes its own requests.
"""
