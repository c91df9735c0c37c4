from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScanRequest(_message.Message):
    __slots__ = ("table", "columns", "predicate", "limit", "explain_only", "query_id", "partner", "end_user", "aggregate")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_ONLY_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    END_USER_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    table: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    predicate: str
    limit: int
    explain_only: bool
    query_id: str
    partner: str
    end_user: str
    aggregate: PartialAggregate
    def __init__(self, table: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., predicate: _Optional[str] = ..., limit: _Optional[int] = ..., explain_only: _Optional[bool] = ..., query_id: _Optional[str] = ..., partner: _Optional[str] = ..., end_user: _Optional[str] = ..., aggregate: _Optional[_Union[PartialAggregate, _Mapping]] = ...) -> None: ...

class PartialAggregate(_message.Message):
    __slots__ = ("group_by", "calls")
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    group_by: _containers.RepeatedScalarFieldContainer[str]
    calls: _containers.RepeatedCompositeFieldContainer[AggregateCall]
    def __init__(self, group_by: _Optional[_Iterable[str]] = ..., calls: _Optional[_Iterable[_Union[AggregateCall, _Mapping]]] = ...) -> None: ...

class AggregateCall(_message.Message):
    __slots__ = ("function", "argument")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENT_FIELD_NUMBER: _ClassVar[int]
    function: str
    argument: str
    def __init__(self, function: _Optional[str] = ..., argument: _Optional[str] = ...) -> None: ...

class ScanHeader(_message.Message):
    __slots__ = ("source", "arrow_schema", "physical_sql", "pushed_predicates", "residual_predicates", "limit_pushed", "dialect", "superset_predicates", "aggregated", "aggregate_declined")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ARROW_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_SQL_FIELD_NUMBER: _ClassVar[int]
    PUSHED_PREDICATES_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_PREDICATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_PUSHED_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    SUPERSET_PREDICATES_FIELD_NUMBER: _ClassVar[int]
    AGGREGATED_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_DECLINED_FIELD_NUMBER: _ClassVar[int]
    source: str
    arrow_schema: bytes
    physical_sql: str
    pushed_predicates: _containers.RepeatedScalarFieldContainer[str]
    residual_predicates: _containers.RepeatedScalarFieldContainer[str]
    limit_pushed: bool
    dialect: str
    superset_predicates: _containers.RepeatedScalarFieldContainer[str]
    aggregated: bool
    aggregate_declined: str
    def __init__(self, source: _Optional[str] = ..., arrow_schema: _Optional[bytes] = ..., physical_sql: _Optional[str] = ..., pushed_predicates: _Optional[_Iterable[str]] = ..., residual_predicates: _Optional[_Iterable[str]] = ..., limit_pushed: _Optional[bool] = ..., dialect: _Optional[str] = ..., superset_predicates: _Optional[_Iterable[str]] = ..., aggregated: _Optional[bool] = ..., aggregate_declined: _Optional[str] = ...) -> None: ...

class ScanTrailer(_message.Message):
    __slots__ = ("bad_values",)
    class BadValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    BAD_VALUES_FIELD_NUMBER: _ClassVar[int]
    bad_values: _containers.ScalarMap[str, int]
    def __init__(self, bad_values: _Optional[_Mapping[str, int]] = ...) -> None: ...

class ScanResponse(_message.Message):
    __slots__ = ("header", "arrow_batch", "trailer")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ARROW_BATCH_FIELD_NUMBER: _ClassVar[int]
    TRAILER_FIELD_NUMBER: _ClassVar[int]
    header: ScanHeader
    arrow_batch: bytes
    trailer: ScanTrailer
    def __init__(self, header: _Optional[_Union[ScanHeader, _Mapping]] = ..., arrow_batch: _Optional[bytes] = ..., trailer: _Optional[_Union[ScanTrailer, _Mapping]] = ...) -> None: ...

class ScanBatchRequest(_message.Message):
    __slots__ = ("scans",)
    SCANS_FIELD_NUMBER: _ClassVar[int]
    scans: _containers.RepeatedCompositeFieldContainer[ScanRequest]
    def __init__(self, scans: _Optional[_Iterable[_Union[ScanRequest, _Mapping]]] = ...) -> None: ...

class ScanBatchResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScanBatchItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ScanBatchItem, _Mapping]]] = ...) -> None: ...

class ScanBatchItem(_message.Message):
    __slots__ = ("scan", "response", "error")
    SCAN_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    scan: int
    response: ScanResponse
    error: ScanError
    def __init__(self, scan: _Optional[int] = ..., response: _Optional[_Union[ScanResponse, _Mapping]] = ..., error: _Optional[_Union[ScanError, _Mapping]] = ...) -> None: ...

class ScanError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TableDescription(_message.Message):
    __slots__ = ("name", "arrow_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARROW_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    arrow_schema: bytes
    def __init__(self, name: _Optional[str] = ..., arrow_schema: _Optional[bytes] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("source", "jurisdiction", "system_name", "tables")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    JURISDICTION_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    source: str
    jurisdiction: str
    system_name: str
    tables: _containers.RepeatedCompositeFieldContainer[TableDescription]
    def __init__(self, source: _Optional[str] = ..., jurisdiction: _Optional[str] = ..., system_name: _Optional[str] = ..., tables: _Optional[_Iterable[_Union[TableDescription, _Mapping]]] = ...) -> None: ...
