"""The NemoVideo backend: typed client, wire models, stream events, renders.

    client.py    `NemoClient`: every endpoint, authentication, sessions
    retry.py     timeouts, deadlines and the one retry policy
    envelope.py  every documented answer envelope, and error codes to exceptions
    body.py      answers read under a size cap
    events.py    stream frames into events; sse.py the bounded SSE reader
    stream.py    one message, sent at most once, and its event stream
    render.py    renders: start once, poll, download whole
    upload.py    upload checks and streamed multipart bodies
    models.py    the backend's answers as models

Nothing is imported here: the HTTP stack loads with the first call that needs it.
"""
