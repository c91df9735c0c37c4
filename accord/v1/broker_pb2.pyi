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

class LinkMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LINK_METHOD_UNSPECIFIED: _ClassVar[LinkMethod]
    LINK_METHOD_FPS: _ClassVar[LinkMethod]
    LINK_METHOD_PROBABILISTIC: _ClassVar[LinkMethod]
    LINK_METHOD_POSSIBLE: _ClassVar[LinkMethod]
SOURCE_STATE_UNSPECIFIED: SourceState
SOURCE_STATE_OK: SourceState
SOURCE_STATE_TIMED_OUT: SourceState
SOURCE_STATE_UNAVAILABLE: SourceState
SOURCE_STATE_REFUSED: SourceState
SOURCE_STATE_ERROR: SourceState
SOURCE_STATE_CIRCUIT_OPEN: SourceState
LINK_METHOD_UNSPECIFIED: LinkMethod
LINK_METHOD_FPS: LinkMethod
LINK_METHOD_PROBABILISTIC: LinkMethod
LINK_METHOD_POSSIBLE: LinkMethod

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
    __slots__ = ("source", "table", "reference", "columns", "predicate", "limit", "dialect", "physical_sql", "pushed_predicates", "residual_predicates", "limit_pushed", "error", "superset_predicates", "circuit", "aggregate", "aggregated", "aggregate_declined")
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
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    AGGREGATED_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_DECLINED_FIELD_NUMBER: _ClassVar[int]
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
    aggregate: str
    aggregated: bool
    aggregate_declined: str
    def __init__(self, source: _Optional[str] = ..., table: _Optional[str] = ..., reference: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., predicate: _Optional[str] = ..., limit: _Optional[int] = ..., dialect: _Optional[str] = ..., physical_sql: _Optional[str] = ..., pushed_predicates: _Optional[_Iterable[str]] = ..., residual_predicates: _Optional[_Iterable[str]] = ..., limit_pushed: _Optional[bool] = ..., error: _Optional[str] = ..., superset_predicates: _Optional[_Iterable[str]] = ..., circuit: _Optional[str] = ..., aggregate: _Optional[str] = ..., aggregated: _Optional[bool] = ..., aggregate_declined: _Optional[str] = ...) -> None: ...

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

class HistoryRequest(_message.Message):
    __slots__ = ("fps_number", "surname", "given_names", "birth_date", "birth_place", "purpose", "case_ref", "timeout_ms")
    FPS_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SURNAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAMES_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    BIRTH_PLACE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    fps_number: str
    surname: str
    given_names: str
    birth_date: str
    birth_place: str
    purpose: str
    case_ref: str
    timeout_ms: int
    def __init__(self, fps_number: _Optional[str] = ..., surname: _Optional[str] = ..., given_names: _Optional[str] = ..., birth_date: _Optional[str] = ..., birth_place: _Optional[str] = ..., purpose: _Optional[str] = ..., case_ref: _Optional[str] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class HistoryFile(_message.Message):
    __slots__ = ("source", "source_person_id", "link", "match_probability", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    MATCH_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    source: str
    source_person_id: str
    link: LinkMethod
    match_probability: float
    fields: _containers.ScalarMap[str, str]
    def __init__(self, source: _Optional[str] = ..., source_person_id: _Optional[str] = ..., link: _Optional[_Union[LinkMethod, str]] = ..., match_probability: _Optional[float] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class HistoryAlias(_message.Message):
    __slots__ = ("source", "source_person_id", "surname", "given_names")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    SURNAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAMES_FIELD_NUMBER: _ClassVar[int]
    source: str
    source_person_id: str
    surname: str
    given_names: str
    def __init__(self, source: _Optional[str] = ..., source_person_id: _Optional[str] = ..., surname: _Optional[str] = ..., given_names: _Optional[str] = ...) -> None: ...

class TimelineEntry(_message.Message):
    __slots__ = ("date", "kind", "table", "source", "source_person_id", "summary", "fields", "link", "match_probability")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    MATCH_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    date: str
    kind: str
    table: str
    source: str
    source_person_id: str
    summary: str
    fields: _containers.ScalarMap[str, str]
    link: LinkMethod
    match_probability: float
    def __init__(self, date: _Optional[str] = ..., kind: _Optional[str] = ..., table: _Optional[str] = ..., source: _Optional[str] = ..., source_person_id: _Optional[str] = ..., summary: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., link: _Optional[_Union[LinkMethod, str]] = ..., match_probability: _Optional[float] = ...) -> None: ...

class HistoryCandidate(_message.Message):
    __slots__ = ("fps_number", "surname", "given_names", "birth_date", "files", "match_probability")
    FPS_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SURNAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAMES_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    MATCH_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    fps_number: str
    surname: str
    given_names: str
    birth_date: str
    files: _containers.RepeatedScalarFieldContainer[str]
    match_probability: float
    def __init__(self, fps_number: _Optional[str] = ..., surname: _Optional[str] = ..., given_names: _Optional[str] = ..., birth_date: _Optional[str] = ..., files: _Optional[_Iterable[str]] = ..., match_probability: _Optional[float] = ...) -> None: ...

class HistoryPart(_message.Message):
    __slots__ = ("query_id", "table", "rewritten_sql_sha256", "rows", "sources", "elapsed_ms")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    REWRITTEN_SQL_SHA256_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    table: str
    rewritten_sql_sha256: str
    rows: int
    sources: _containers.RepeatedCompositeFieldContainer[SourceStatus]
    elapsed_ms: float
    def __init__(self, query_id: _Optional[str] = ..., table: _Optional[str] = ..., rewritten_sql_sha256: _Optional[str] = ..., rows: _Optional[int] = ..., sources: _Optional[_Iterable[_Union[SourceStatus, _Mapping]]] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("history_id", "role", "purpose", "found", "identity", "files", "possible_matches", "aliases", "timeline", "candidates", "tables_absent", "notes", "parts", "partial", "elapsed_ms")
    class IdentityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HISTORY_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    POSSIBLE_MATCHES_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TABLES_ABSENT_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_MS_FIELD_NUMBER: _ClassVar[int]
    history_id: str
    role: str
    purpose: str
    found: bool
    identity: _containers.ScalarMap[str, str]
    files: _containers.RepeatedCompositeFieldContainer[HistoryFile]
    possible_matches: _containers.RepeatedCompositeFieldContainer[HistoryFile]
    aliases: _containers.RepeatedCompositeFieldContainer[HistoryAlias]
    timeline: _containers.RepeatedCompositeFieldContainer[TimelineEntry]
    candidates: _containers.RepeatedCompositeFieldContainer[HistoryCandidate]
    tables_absent: _containers.RepeatedScalarFieldContainer[str]
    notes: _containers.RepeatedScalarFieldContainer[str]
    parts: _containers.RepeatedCompositeFieldContainer[HistoryPart]
    partial: bool
    elapsed_ms: float
    def __init__(self, history_id: _Optional[str] = ..., role: _Optional[str] = ..., purpose: _Optional[str] = ..., found: _Optional[bool] = ..., identity: _Optional[_Mapping[str, str]] = ..., files: _Optional[_Iterable[_Union[HistoryFile, _Mapping]]] = ..., possible_matches: _Optional[_Iterable[_Union[HistoryFile, _Mapping]]] = ..., aliases: _Optional[_Iterable[_Union[HistoryAlias, _Mapping]]] = ..., timeline: _Optional[_Iterable[_Union[TimelineEntry, _Mapping]]] = ..., candidates: _Optional[_Iterable[_Union[HistoryCandidate, _Mapping]]] = ..., tables_absent: _Optional[_Iterable[str]] = ..., notes: _Optional[_Iterable[str]] = ..., parts: _Optional[_Iterable[_Union[HistoryPart, _Mapping]]] = ..., partial: _Optional[bool] = ..., elapsed_ms: _Optional[float] = ...) -> None: ...
