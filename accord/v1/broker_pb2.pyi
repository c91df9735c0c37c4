from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SourceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_STATE_UNSPECIFIED: _ClassVar[SourceState]
    SOURCE_STATE_OK: _ClassVar[SourceState]
    SOURCE_STATE_TIMED_OUT: _ClassVar[SourceState]
    SOURCE_STATE_UNAVAILABLE: _ClassVar[SourceState]
    SOURCE_STATE_REFUSED: _ClassVar[SourceState]
    SOURCE_STATE_ERROR: _ClassVar[SourceState]
    SOURCE_STATE_CIRCUIT_OPEN: _ClassVar[SourceState]
SOURCE_STATE_UNSPECIFIED: SourceState
SOURCE_STATE_OK: SourceState
SOURCE_STATE_TIMED_OUT: SourceState
SOURCE_STATE_UNAVAILABLE: SourceState
SOURCE_STATE_REFUSED: SourceState
SOURCE_STATE_ERROR: SourceState
SOURCE_STATE_CIRCUIT_OPEN: SourceState

class QueryRequest(_message.Message):
    __slots__ = ("sql", "purpose", "case_ref", "allow_partial", "timeout_ms")
    SQL_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    sql: str
    purpose: str
    case_ref: str
    allow_partial: bool
    timeout_ms: int
    def __init__(self, sql: _Optional[str] = ..., purpose: _Optional[str] = ..., case_ref: _Optional[str] = ..., allow_partial: _Optional[bool] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class QueryHeader(_message.Message):
    __slots__ = ("query_id", "arrow_schema")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    ARROW_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    arrow_schema: bytes
    def __init__(self, query_id: _Optional[str] = ..., arrow_schema: _Optional[bytes] = ...) -> None: ...

class SourceStatus(_message.Message):
    __slots__ = ("source", "state", "rows", "bytes", "elapsed_ms", "error", "scans", "bad_values")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SCANS_FIELD_NUMBER: _ClassVar[int]
    BAD_VALUES_FIELD_NUMBER: _ClassVar[int]
    source: str
    state: SourceState
    rows: int
    bytes: int
    elapsed_ms: float
    error: str
    scans: int
    bad_values: int
    def __init__(self, source: _Optional[str] = ..., state: _Optional[_Union[SourceState, str]] = ..., rows: _Optional[int] = ..., bytes: _Optional[int] = ..., elapsed_ms: _Optional[float] = ..., error: _Optional[str] = ..., scans: _Optional[int] = ..., bad_values: _Optional[int] = ...) -> None: ...

class QueryTrailer(_message.Message):
    __slots__ = ("query_id", "sources", "rows", "elapsed_ms", "partial", "suppressed_groups")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    sources: _containers.RepeatedCompositeFieldContainer[SourceStatus]
    rows: int
    elapsed_ms: float
    partial: bool
    suppressed_groups: int
    def __init__(self, query_id: _Optional[str] = ..., sources: _Optional[_Iterable[_Union[SourceStatus, _Mapping]]] = ..., rows: _Optional[int] = ..., elapsed_ms: _Optional[float] = ..., partial: _Optional[bool] = ..., suppressed_groups: _Optional[int] = ...) -> None: ...

class QueryResponse(_message.Message):
    __slots__ = ("header", "arrow_batch", "trailer")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ARROW_BATCH_FIELD_NUMBER: _ClassVar[int]
    TRAILER_FIELD_NUMBER: _ClassVar[int]
    header: QueryHeader
    arrow_batch: bytes
    trailer: QueryTrailer
    def __init__(self, header: _Optional[_Union[QueryHeader, _Mapping]] = ..., arrow_batch: _Optional[bytes] = ..., trailer: _Optional[_Union[QueryTrailer, _Mapping]] = ...) -> None: ...

class SourceScan(_message.Message):
    __slots__ = ("source", "table", "reference", "columns", "predicate", "limit", "dialect", "physical_sql", "pushed_predicates", "residual_predicates", "limit_pushed", "error", "superset_predicates", "circuit")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_SQL_FIELD_NUMBER: _ClassVar[int]
    PUSHED_PREDICATES_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_PREDICATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_PUSHED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SUPERSET_PREDICATES_FIELD_NUMBER: _ClassVar[int]
    CIRCUIT_FIELD_NUMBER: _ClassVar[int]
    source: str
    table: str
    reference: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    predicate: str
    limit: int
    dialect: str
    physical_sql: str
    pushed_predicates: _containers.RepeatedScalarFieldContainer[str]
    residual_predicates: _containers.RepeatedScalarFieldContainer[str]
    limit_pushed: bool
    error: str
    superset_predicates: _containers.RepeatedScalarFieldContainer[str]
    circuit: str
    def __init__(self, source: _Optional[str] = ..., table: _Optional[str] = ..., reference: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., predicate: _Optional[str] = ..., limit: _Optional[int] = ..., dialect: _Optional[str] = ..., physical_sql: _Optional[str] = ..., pushed_predicates: _Optional[_Iterable[str]] = ..., residual_predicates: _Optional[_Iterable[str]] = ..., limit_pushed: _Optional[bool] = ..., error: _Optional[str] = ..., superset_predicates: _Optional[_Iterable[str]] = ..., circuit: _Optional[str] = ...) -> None: ...

class ExplainResponse(_message.Message):
    __slots__ = ("query_id", "validated_sql", "merge_sql", "scans", "rewritten_sql", "role", "purpose", "masks", "row_filters", "min_group_size", "privacy_epsilon", "privacy_epsilon_remaining")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_SQL_FIELD_NUMBER: _ClassVar[int]
    MERGE_SQL_FIELD_NUMBER: _ClassVar[int]
    SCANS_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_SQL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    MASKS_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTERS_FIELD_NUMBER: _ClassVar[int]
    MIN_GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_EPSILON_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_EPSILON_REMAINING_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    validated_sql: str
    merge_sql: str
    scans: _containers.RepeatedCompositeFieldContainer[SourceScan]
    rewritten_sql: str
    role: str
    purpose: str
    masks: _containers.RepeatedScalarFieldContainer[str]
    row_filters: _containers.RepeatedScalarFieldContainer[str]
    min_group_size: int
    privacy_epsilon: float
    privacy_epsilon_remaining: float
    def __init__(self, query_id: _Optional[str] = ..., validated_sql: _Optional[str] = ..., merge_sql: _Optional[str] = ..., scans: _Optional[_Iterable[_Union[SourceScan, _Mapping]]] = ..., rewritten_sql: _Optional[str] = ..., role: _Optional[str] = ..., purpose: _Optional[str] = ..., masks: _Optional[_Iterable[str]] = ..., row_filters: _Optional[_Iterable[str]] = ..., min_group_size: _Optional[int] = ..., privacy_epsilon: _Optional[float] = ..., privacy_epsilon_remaining: _Optional[float] = ...) -> None: ...

class CatalogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CatalogColumn(_message.Message):
    __slots__ = ("name", "type", "mask")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    mask: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., mask: _Optional[str] = ...) -> None: ...

class CatalogTable(_message.Message):
    __slots__ = ("name", "columns", "sources")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    columns: _containers.RepeatedCompositeFieldContainer[CatalogColumn]
    sources: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., columns: _Optional[_Iterable[_Union[CatalogColumn, _Mapping]]] = ..., sources: _Optional[_Iterable[str]] = ...) -> None: ...

class CatalogResponse(_message.Message):
    __slots__ = ("partner", "role", "tables", "purposes", "case_reference_required", "aggregate_only")
    PARTNER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TABLES_FIELD_NUMBER: _ClassVar[int]
    PURPOSES_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    partner: str
    role: str
    tables: _containers.RepeatedCompositeFieldContainer[CatalogTable]
    purposes: _containers.RepeatedScalarFieldContainer[str]
    case_reference_required: bool
    aggregate_only: bool
    def __init__(self, partner: _Optional[str] = ..., role: _Optional[str] = ..., tables: _Optional[_Iterable[_Union[CatalogTable, _Mapping]]] = ..., purposes: _Optional[_Iterable[str]] = ..., case_reference_required: _Optional[bool] = ..., aggregate_only: _Optional[bool] = ...) -> None: ...
