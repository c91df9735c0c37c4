"""The whole policy: partner registry, role files and purposes, checked together.

``check_policies`` collects every problem (``accord policy check`` prints
them all); ``PolicySet.load`` refuses to return a policy with any problem,
so the broker never starts with part of one.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
from sqlglot.errors import SqlglotError

from accord.catalog import catalog_schema
from accord.errors import AccordError, ConfigError, PolicyDenied, PolicyFileError
from broker.identity import PartnerRegistry, Principal
from broker.policy.masks import bind_keyed_hash
from broker.policy.model import BUILTIN_ATTRIBUTES, Role, load_role, partner_quota
from broker.policy.rewrite import RoleView, secure_view
from broker.policy.yamlfile import LineDict, load_yaml
from broker.quota import Quota

if TYPE_CHECKING:
    from accord.federation import Federation


@dataclass(frozen=True)
class PolicySet:
    registry: PartnerRegistry
    roles: dict[str, Role]
    purposes: dict[str, str]
    quotas: dict[str, Quota] = field(default_factory=dict)  # partner -> its quota

    @classmethod
    def load(cls, directory: Path, federation: Federation) -> PolicySet:
        policy, problems = check_policies(directory, federation)
        if problems or policy is None:
            raise PolicyFileError(
                "the policy has errors; the broker will not run with part of "
                "a policy:\n  " + "\n  ".join(problems)
            )
        return policy

    def role_for(self, principal: Principal) -> Role:
        role = self.roles.get(principal.partner.role)
        if role is None:  # check_policies makes this impossible; deny all the same
            raise PolicyDenied(f"role {principal.partner.role} has no policy", reason="other")
        return role

    def quota_for(self, principal: Principal) -> Quota:
        """The partner's quota: its own, else its role's, else the default."""
        name = principal.partner.name
        if name in self.quotas:
            return self.quotas[name]
        role = self.roles.get(principal.partner.role)
        return role.quota if role is not None else Quota()


def check_policies(directory: Path, federation: Federation) -> tuple[PolicySet | None, list[str]]:
    """Loads everything under ``directory`` and returns (policy, problems)."""
    problems: list[str] = []
    roles: dict[str, Role] = {}
    # A role file that does not load is one problem, reported once: what
    # would follow from its absence (its purposes unused, its partners
    # without a role) is not checked, as it may well be false.
    broken: set[str] = set()
    for path in sorted((directory / "roles").glob("*.yaml")):
        try:
            role = load_role(path, federation)
        except ConfigError as exc:
            problems.append(str(exc))
            broken.add(path.stem)
            continue
        roles[role.name] = role
    if not roles and not broken:
        problems.append(f"{directory / 'roles'}: no role files")
    purposes = _load_purposes(directory / "purposes.yaml", roles, problems, judge_unused=not broken)
    try:
        registry = PartnerRegistry.load(directory / "partners.yaml")
    except ConfigError as exc:
        return None, [*problems, str(exc)]
    lacking = _check_partners(directory / "partners.yaml", registry, roles, broken, problems)
    quotas = _partner_quotas(directory / "partners.yaml", registry, roles, problems)
    with duckdb.connect() as con:  # one database of empty tables for every role's check
        empty_catalog(con, federation)
        for role in roles.values():
            if role.name not in lacking:  # its views cannot bind: reported above
                problems += type_check(role, registry, federation, con)
    policy = PolicySet(registry, roles, purposes, quotas)
    return (None if problems else policy), problems


def _load_purposes(
    path: Path, roles: dict[str, Role], problems: list[str], *, judge_unused: bool = True
) -> dict[str, str]:
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        problems.append(str(exc))
        return {}
    purposes = doc.get("purposes") if isinstance(doc, LineDict) else None
    if not isinstance(purposes, LineDict):
        problems.append(f"{path}:1: expected 'purposes: {{name: description}}'")
        return {}
    used = {p for role in roles.values() for p in role.purposes}
    for name in purposes if judge_unused else ():
        if name not in used:
            problems.append(f"{path}:{purposes.line_of(name)}: purpose {name!r} is used by no role")
    for role in roles.values():
        for name in sorted(role.purposes - set(purposes)):
            problems.append(f"{role.path}: purpose {name!r} is not declared in {path.name}")
    return {str(k): str(v) for k, v in purposes.items()}


def _check_partners(
    path: Path,
    registry: PartnerRegistry,
    roles: dict[str, Role],
    broken: set[str],
    problems: list[str],
) -> set[str]:
    """Every partner has a role with a policy, and the attributes that policy
    uses: one problem per missing attribute of a role, naming its partners
    and the closest attribute they have (a typo in the policy is one typo).
    Returns the roles whose partners lack an attribute."""
    lacking: dict[tuple[str, str], list[str]] = {}
    for partner in registry.partners.values():
        role = roles.get(partner.role)
        if role is None:
            if partner.role not in broken:  # a broken file is reported already
                problems.append(
                    f"{path}: partner {partner.name!r} has role {partner.role!r}, "
                    "which has no policy file"
                )
            continue
        for attribute in sorted(role.principal_attributes() - BUILTIN_ATTRIBUTES):
            if attribute not in partner.attributes:
                lacking.setdefault((role.name, attribute), []).append(partner.name)
    for (role_name, attribute), partners in sorted(lacking.items()):
        given = sorted(
            BUILTIN_ATTRIBUTES | {a for p in partners for a in registry.partners[p].attributes}
        )
        close = difflib.get_close_matches(attribute, sorted(given), n=1)
        guess = f"; did you mean principal.{close[0]}?" if close else ""
        problems.append(
            f"{roles[role_name].path}: the policy uses principal.{attribute}, which "
            f"partner{'s' if len(partners) > 1 else ''} {', '.join(partners)} "
            f"({path.name}) lack{'' if len(partners) > 1 else 's'}{guess}"
        )
    return {role_name for role_name, _ in lacking}


def _partner_quotas(
    path: Path, registry: PartnerRegistry, roles: dict[str, Role], problems: list[str]
) -> dict[str, Quota]:
    """Each partner's quota: its role's, with the partner's own ``quota:`` keys."""
    try:
        doc = load_yaml(path)
    except ConfigError as exc:
        problems.append(str(exc))
        return {}
    specs = doc.get("partners") if isinstance(doc, LineDict) else None
    quotas: dict[str, Quota] = {}
    for name, partner in registry.partners.items():
        role = roles.get(partner.role)
        base = role.quota if role is not None else Quota()
        try:
            quotas[name] = partner_quota(path, (specs or {}).get(name), base)
        except ConfigError as exc:
            problems.append(str(exc))
    return quotas


def empty_catalog(con: duckdb.DuckDBPyConnection, federation: Federation) -> None:
    """Registers each catalog table, empty, on ``con``."""
    for name, columns in catalog_schema(federation).items():
        assert isinstance(columns, dict)
        schema = pa.schema([(c, _ARROW[t]) for c, t in columns.items()])
        con.register(name, schema.empty_table())


def type_check(
    role: Role,
    registry: PartnerRegistry,
    federation: Federation,
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[str]:
    """Runs each secure view over empty tables in DuckDB and compares types.

    Catches masks whose result is not the declared (or kept) type, row
    filters that are not boolean or do not bind, and SQL DuckDB refuses.
    ``con`` holds the empty catalog (``empty_catalog``); without it, one
    is made (a new database costs ~30 ms: ``load`` shares one).
    """
    problems: list[str] = []
    partners = [p for p in registry.partners.values() if p.role == role.name]
    if not partners:
        return []  # nothing to bind principal attributes to; partners check reports it
    principal = Principal(partners[0], "", 0, dt.datetime.now(dt.UTC))
    view = RoleView(role, principal, federation)
    if con is None:
        with duckdb.connect() as own:
            empty_catalog(own, federation)
            return type_check(role, registry, federation, own)
    expected_schema = view.schema()
    for table in role.tables:
        if table not in expected_schema:
            continue  # no source releases it: the role simply cannot see it
        try:
            sql = bind_keyed_hash(secure_view(table, view), b"type-check").sql(dialect="duckdb")
            described = dict((row[0], row[1]) for row in con.sql(f"DESCRIBE {sql}").fetchall())
        except (AccordError, duckdb.Error, SqlglotError) as exc:
            problems.append(f"{role.path}: table {table}: {str(exc).splitlines()[0]}")
            continue
        for column, expected in expected_schema[table].items():
            got = described.get(column)
            if got != expected:
                problems.append(
                    f"{role.path}: {table}.{column}: the mask gives {got}, but the "
                    f"column is {expected}; declare `type: {got}` or fix the mask"
                )
    return problems


_ARROW = {
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


def default_policies_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent / "policies"
