"""gRPC metadata keys of calls to the broker."""

from __future__ import annotations

#: The person at the partner who asked (audited; the partner vouches for it).
END_USER_METADATA = "x-accord-end-user"
#: Flight SQL calls carry a query's purpose and case reference as call
#: headers (QueryRequest fields on the Broker service); ADBC sets them
#: with ``adbc.flight.sql.rpc.call_header.<name>``.
PURPOSE_METADATA = "x-accord-purpose"
CASE_REF_METADATA = "x-accord-case-ref"
#: Sent by the broker as initial metadata of a query once it knows the
#: caller, before any work: the id its audit records carry, so a client can
#: quote it even for a query that fails or that it cancels.
QUERY_ID_METADATA = "x-accord-query-id"
#: Set by an adapter in the trailing metadata of a scan it refused or failed
#: itself, so the broker tells the adapter's own words (which may reach
#: partners, scrubbed of addresses) from gRPC core's (which never do).
ADAPTER_ERROR_METADATA = "x-accord-adapter-error"
