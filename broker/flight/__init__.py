"""The broker's Arrow Flight SQL endpoint: standard SQL clients (ADBC, the
Flight SQL JDBC driver, BI tools, Go) on their own port, with the very same
identity, admission, policy, limits, audit and metrics as ``Query``.

It is served with grpcio, in the broker process, from the Flight and Flight
SQL messages (``protos/arrow/flight``, generated into ``accord/flight``):
``pyarrow.flight`` bundles its own gRPC core, and two gRPC cores in one
process crash, while a separate process would need its own copy of the
broker's identity, quota and audit state. Only pyarrow's IPC writer and
reader are used, to frame Arrow data as FlightData.

- ``arrow_data``: Arrow IPC messages as FlightData, and back.
- ``handles``: statement tickets and prepared statements, bound to the
  certificate that asked for them, expiring, single-use.
- ``params``: a prepared statement's parameters bound as literals through sqlglot.
- ``metadata``: GetSqlInfo, GetTables and the other metadata commands,
  from the caller's catalog.
- ``service``: the FlightService handlers and the server.
"""
