"""What each ``accord`` sub-command does (argument parsing is in ``app.cli``)."""

from __future__ import annotations

import os
import re
import secrets
import sys
from typing import TYPE_CHECKING

import grpc

from accord.client import BrokerClient
from accord.errors import ConfigError
from accord.federation import load_federation
from app.render import render_reconciliation, render_result, render_warnings
from broker.identity import PartnerRegistry

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable
    from pathlib import Path

    from accord.pki import PkiLayout
    from accord.workdir import Workdir


def serve(args: argparse.Namespace, workdir: Workdir) -> int:
    from app.serve import serve_adapter, serve_broker

    if args.role == "adapter":
        if not args.source:
            raise ConfigError("`accord serve adapter` needs --source CODE")
        serve_adapter(
            workdir,
            args.federation,
            args.source,
            args.host,
            args.port,
            args.port_file,
            args.metrics_port,
        )
        return 0
    endpoints: dict[str, tuple[str, ...]] = {}
    for item in args.endpoint:
        code, sep, addresses = item.partition("=")
        if not sep or not addresses:
            raise ConfigError(f"--endpoint {item!r}: use SOURCE=HOST:PORT[,HOST:PORT...]")
        endpoints[code] = tuple(a for a in addresses.split(",") if a)
    serve_broker(
        workdir,
        args.federation,
        args.policies,
        args.host,
        args.port,
        endpoints,
        args.port_file,
        args.metrics_port,
    )
    return 0


def _client(args: argparse.Namespace, workdir: Workdir) -> BrokerClient:
    address = args.broker or workdir.broker_address()
    ca, cert, key = workdir.partner_credentials(args.partner)
    return BrokerClient(address, ca, cert, key, end_user=getattr(args, "end_user", ""))


def _rpc_failed(exc: grpc.RpcError) -> int:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    print(f"accord: {code.name if code else 'ERROR'}: {details}", file=sys.stderr)
    return 1


def query(args: argparse.Namespace, workdir: Workdir) -> int:
    with _client(args, workdir) as client:
        try:
            result = client.query(
                args.sql,
                purpose=args.purpose,
                case_ref=args.case_ref,
                allow_partial=args.allow_partial,
                timeout=args.timeout,
            )
        except grpc.RpcError as exc:
            return _rpc_failed(exc)
    print(render_result(result, args.format))
    for warning in render_warnings(result):
        print(warning, file=sys.stderr)
    return 0


def history(args: argparse.Namespace, workdir: Workdir) -> int:
    from app import history_view

    with _client(args, workdir) as client:
        try:
            found = history_view.fetch(client, args)
        except grpc.RpcError as exc:
            return _rpc_failed(exc)
    print(history_view.as_json(found) if args.format == "json" else history_view.as_tables(found))
    return 0


def explain(args: argparse.Namespace, workdir: Workdir) -> int:
    with _client(args, workdir) as client:
        try:
            plan = client.explain(
                args.sql, purpose=args.purpose, case_ref=args.case_ref, timeout=args.timeout
            )
        except grpc.RpcError as exc:
            return _rpc_failed(exc)
    print(f"query id:  {plan.query_id}")
    print(f"role:      {plan.role} (purpose {plan.purpose or '-'})")
    print(f"validated: {plan.validated_sql}")
    for mask in plan.masks:
        print(f"mask:      {mask}")
    for row_filter in plan.row_filters:
        print(f"filter:    {row_filter}")
    if plan.min_group_size:
        print(f"groups:    each output group must cover at least {plan.min_group_size} persons")
    print(f"rewritten: {plan.rewritten_sql}")
    print(f"merge:     {plan.merge_sql}")
    for scan in plan.scans:
        print(
            f"\n[{scan.source}] {scan.table} AS {scan.reference} ({scan.dialect}, "
            f"circuit {scan.circuit or 'CLOSED'})"
        )
        print(f"  columns:  {', '.join(scan.columns)}")
        print(
            f"  asked:    {scan.predicate or '(all rows)'}"
            + (f" LIMIT {scan.limit}" if scan.limit else "")
        )
        print(
            f"  pushed:   {_conjunction(scan.pushed_predicates) or '(none)'}"
            + (" with LIMIT" if scan.limit_pushed else "")
        )
        if scan.superset_predicates:
            print(f"  narrowed: {_conjunction(scan.superset_predicates)} (re-checked here)")
        if scan.residual_predicates:
            print(f"  broker:   {_conjunction(scan.residual_predicates)}")
        print(f"  sql:      {scan.physical_sql or scan.error}")
    return 0


def _conjunction(parts: Iterable[str]) -> str:
    items = list(parts)
    return " AND ".join(f"({p})" if len(items) > 1 else p for p in items)


def catalog(args: argparse.Namespace, workdir: Workdir) -> int:
    with _client(args, workdir) as client:
        try:
            response = client.catalog()
        except grpc.RpcError as exc:
            return _rpc_failed(exc)
    print(
        f"partner {response.partner} (role {response.role}); purposes: "
        f"{', '.join(response.purposes) or 'none'}"
        + ("; case reference required" if response.case_reference_required else "")
        + ("; aggregate queries only" if response.aggregate_only else "")
    )
    for table in response.tables:
        columns = ", ".join(
            f"{c.name} {c.type}" + (f" [{c.mask}]" if c.mask else "") for c in table.columns
        )
        print(f"  {table.name} [{', '.join(table.sources)}]: {columns}")
    return 0


def certs(args: argparse.Namespace, workdir: Workdir) -> int:
    """``accord certs init|issue|renew|revoke|crl|list|csr``."""
    if args.certs_command == "init":
        layout = init_certs(workdir, args.federation, args.policies, args.dir, force=args.force)
        print(f"federation certificates in {layout.directory}")
        return 0
    from app import certs_commands

    return certs_commands.run(args, workdir)


def init_certs(
    workdir: Workdir,
    federation_path: Path,
    policies_dir: Path,
    directory: Path | None = None,
    *,
    force: bool = False,
) -> PkiLayout:
    from certs import init_pki

    federation = load_federation(federation_path)
    registry = PartnerRegistry.load(policies_dir / "partners.yaml")
    layout = init_pki(
        directory or workdir.pki.directory,
        partners={p.name: p.organization for p in registry.partners.values()},
        adapters=list(federation.sources),
        force=force,
    )
    secret = layout.directory / "mask.secret"
    if force or not secret.exists():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
    return layout


def audit(args: argparse.Namespace, workdir: Workdir) -> int:
    """``accord audit verify|search|reconcile``: the exit status says whether
    the trail is intact (and, for reconcile, whether every scan is accounted for)."""
    import datetime as dt
    import json

    from accord.audit.keys import load_public_key
    from accord.audit.search import search
    from accord.audit.verify import verify

    if args.audit_command == "reconcile":
        return reconcile_trails(workdir, args.since, args.format)
    directory, pin = trail_location(workdir, args.trail)
    directory = args.path or directory
    if args.audit_command == "verify":
        # Never the key file beside the trail, nor the keys its checkpoints
        # embed: whoever rewrites the trail can replace those too.
        trusted = args.public_key or pin
        if not trusted.is_file():
            print(
                f"{directory}: cannot call the trail intact without a trusted key: give "
                f"--public-key FILE (hex or PEM), or verify in the work dir whose "
                f"{args.trail} pinned its key ({trusted} is missing)"
            )
            return 2
        report = verify(directory, load_public_key(trusted))
        print(f"{directory}: {report.records} records, {report.checkpoints} signed checkpoints")
        if report.unverifiable_tail:
            print(
                f"{report.unverifiable_tail} records after the last checkpoint: unverifiable "
                "tail (intact chain, not yet signed)"
            )
        if not report.ok:
            print(f"TAMPERED: first bad record {report.first_bad}: {report.problem}")
            return 1
        print(f"intact (signatures checked against {trusted})")
        return 0
    since = dt.datetime.fromisoformat(args.since) if args.since else None
    until = dt.datetime.fromisoformat(args.until) if args.until else None
    for record in search(
        directory,
        since=since,
        until=until,
        partner=args.partner,
        purpose=args.purpose,
        case_ref=args.case_ref,
        fps=args.fps,
    ):
        print(json.dumps(record, ensure_ascii=False))
    return 0


_ADAPTER_TRAIL = re.compile(r"^adapter:([A-Za-z0-9][A-Za-z0-9_-]{0,63})$")


def trail_location(workdir: Workdir, trail: str) -> tuple[Path, Path]:
    """(directory, pin) of ``broker`` or ``adapter:CODE``."""
    if trail == "broker":
        return workdir.audit_dir(), workdir.audit_key_pin()
    match = _ADAPTER_TRAIL.match(trail)
    if match is None:
        raise ConfigError(f"--trail {trail!r}: use broker or adapter:CODE (e.g. adapter:BC)")
    code = match.group(1)
    return workdir.adapter_audit_dir(code), workdir.adapter_audit_key_pin(code)


def reconcile_trails(workdir: Workdir, since: str | None, output: str) -> int:
    """``accord audit reconcile``: 2 if a trail does not verify against its
    pin, 1 if a scan has no broker record, else 0."""
    import datetime as dt
    import json

    from accord.audit.keys import load_public_key
    from accord.audit.reconcile import reconcile
    from accord.audit.search import search
    from accord.audit.verify import verify

    trails = {"broker": (workdir.audit_dir(), workdir.audit_key_pin())}
    for code in workdir.adapter_audit_sources():
        trails[f"adapter:{code.upper()}"] = trail_location(workdir, f"adapter:{code}")
    problems = {}
    for name, (directory, pin) in trails.items():
        if not pin.is_file():
            problems[name] = f"no pinned key ({pin} is missing)"
            continue
        report = verify(directory, load_public_key(pin))
        if not report.ok:
            problems[name] = f"first bad record {report.first_bad}: {report.problem}"
    if problems:
        for name, problem in problems.items():
            print(f"{name} trail ({trails[name][0]}) does not verify: {problem}", file=sys.stderr)
        if output == "json":
            print(json.dumps({"tampered": problems}, ensure_ascii=False))
        return 2
    moment = dt.datetime.fromisoformat(since) if since else None
    found = reconcile(
        search(workdir.audit_dir()),
        {
            name.removeprefix("adapter:"): search(d)
            for name, (d, _) in trails.items()
            if name != "broker"
        },
        since=moment,
    )
    if output == "json":
        print(json.dumps(found.as_dict(), ensure_ascii=False))
    else:
        print(render_reconciliation(found))
    return 1 if found.unmatched else 0


def policy_check(args: argparse.Namespace, workdir: Workdir) -> int:
    from adapters.release import check_federation
    from broker.policy.store import check_policies

    federation = load_federation(args.federation)
    policy, problems = check_policies(args.policies, federation)
    release_problems, warnings = check_federation(federation)
    problems = [*problems, *(f"{args.federation}: {p}" for p in release_problems)]
    for warning in warnings:
        print(f"{args.federation}: warning: {warning}")
    for problem in problems:
        print(problem)
    if problems or policy is None:
        print(f"{len(problems)} problem(s) in {args.policies}", file=sys.stderr)
        return 1
    print(
        f"{args.policies}: {len(policy.roles)} roles, {len(policy.registry.partners)} "
        f"partners, {len(policy.purposes)} purposes: OK"
    )
    return 0


def datagen(args: argparse.Namespace, workdir: Workdir) -> int:
    from adapters.datagen import load_target, write_federation_data

    federation = load_federation(args.federation)
    if args.data:
        from app.dataload import load_federation_files

        if args.target:
            raise ConfigError("--data loads every source into its own database; drop --target")
        counts = load_federation_files(federation, args.data, workdir.path, args.shards)
    elif args.target:
        counts = load_target(
            federation, args.target, seed=args.seed, scale=args.scale, sources=args.source
        )
    else:
        counts = write_federation_data(federation, workdir.path, seed=args.seed, scale=args.scale)
    for source, tables in counts.items():
        summary = ", ".join(f"{t} {n}" for t, n in tables.items())
        print(f"{source}: {summary}")
    return 0
