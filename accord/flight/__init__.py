"""Arrow Flight and Flight SQL messages, generated from ``protos/arrow/flight``
(``make protos``); the broker's Flight SQL endpoint is ``broker/flight``."""
