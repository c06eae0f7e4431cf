"""The WorldService over HTTP: the store (``store.py``), tokens (``auth.py``), shared state
(``state.py``), dependencies (``deps.py``), errors (``errors.py``), one router per resource
(``routers/``), the event stream (``event_stream.py``), the Kafka relay and the app factory
(``app.py``)."""
