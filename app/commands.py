"""What each ``accord`` sub-command does (argument parsing is in ``app.cli``)."""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from accord.client import BrokerClient
from accord.errors import ConfigError
from accord.federation import load_federation
from app.advice import EXIT_FAILED, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, in_our_words, rpc_failure
from app.render import render_reconciliation, render_result, render_warnings
from broker.identity import PartnerRegistry

if TYPE_CHECKING:
    import argparse
    import datetime as dt
    from collections.abc import Iterable

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
        args.flight_port,
    )
    return 0


def _client(args: argparse.Namespace, workdir: Workdir) -> BrokerClient:
    ca, cert, key = workdir.partner_credentials(args.partner)  # first: without them, no call
    address = args.broker or workdir.broker_address()
    return BrokerClient(address, ca, cert, key, end_user=getattr(args, "end_user", ""))


def _rpc_failed(exc: grpc.RpcError, args: argparse.Namespace, workdir: Workdir) -> int:
    print(rpc_failure(exc, args, workdir), file=sys.stderr)
    return EXIT_FAILED


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
            return _rpc_failed(exc, args, workdir)
    print(render_result(result, args.format))
    for warning in render_warnings(result):
        print(in_our_words(warning), file=sys.stderr)
    return EXIT_PARTIAL if result.trailer.partial else EXIT_OK


def history(args: argparse.Namespace, workdir: Workdir) -> int:
    from app import brief, history_view

    out: str | None = getattr(args, "out", None)
    chromium = ""
    if out and args.format not in ("html", "pdf"):
        raise brief.BriefError("--out writes --format html or pdf; the others print")
    if args.format == "pdf":
        if not out:
            raise brief.BriefError("--format pdf needs --out FILE (a PDF is not for a terminal)")
        chromium = brief.find_chromium()  # before asking: a history is audited
    with _client(args, workdir) as client:
        try:
            found = history_view.fetch(client, args)
        except grpc.RpcError as exc:
            return _rpc_failed(exc, args, workdir)
    if args.format == "pdf" and out:
        brief.print_pdf(brief.as_html(found), Path(out), chromium)
    elif args.format == "html" and out:
        Path(out).write_text(brief.as_html(found), encoding="utf-8")
    else:
        render = {
            "json": history_view.as_json,
            "brief": brief.as_tables,
            "html": brief.as_html,
        }.get(args.format, history_view.as_tables)
        print(render(found))
    return 0


def explain(args: argparse.Namespace, workdir: Workdir) -> int:
    with _client(args, workdir) as client:
        try:
            plan = client.explain(
                args.sql, purpose=args.purpose, case_ref=args.case_ref, timeout=args.timeout
            )
        except grpc.RpcError as exc:
            return _rpc_failed(exc, args, workdir)
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
            return _rpc_failed(exc, args, workdir)
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
    import json

    from accord.audit.search import search

    if args.audit_command == "reconcile":
        return reconcile_trails(workdir, args.since, args.format)
    directory, pin = trail_location(workdir, args.trail)
    directory = args.path or directory
    if args.audit_command == "verify":
        return verify_trail(directory, args.public_key or pin, args.trail)
    if not directory.is_dir():
        print(f"{directory}: no audit trail here; give its directory or --workdir", file=sys.stderr)
        return EXIT_USAGE
    for record in search(
        directory,
        since=args.since,
        until=args.until,
        partner=args.partner,
        purpose=args.purpose,
        case_ref=args.case_ref,
        fps=args.fps,
        query_id=args.query_id,
    ):
        print(json.dumps(record, ensure_ascii=False))
    return EXIT_OK


def verify_trail(directory: Path, trusted: Path, trail: str) -> int:
    """``accord audit verify``: 0 intact, 1 tampered, 2 nothing to verify with."""
    from accord.audit.keys import load_public_key
    from accord.audit.verify import verify

    if not directory.is_dir():
        print(
            f"{directory}: no audit trail here. The broker writes it in WORKDIR/audit "
            "once it serves (adapters in WORKDIR/audit/adapter-CODE): give the trail's "
            "directory, or the --workdir it was written in",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Never the key file beside the trail, nor the keys its checkpoints
    # embed: whoever rewrites the trail can replace those too.
    if not trusted.is_file():
        print(
            f"{directory}: cannot call the trail intact without a trusted key: give "
            f"--public-key FILE (hex or PEM), or verify in the work dir whose "
            f"{trail} pinned its key ({trusted} is missing)"
        )
        return EXIT_USAGE
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
    return EXIT_OK


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


def reconcile_trails(workdir: Workdir, since: dt.datetime | None, output: str) -> int:
    """``accord audit reconcile``: 2 if a trail does not verify against its
    pin, 1 if a scan has no broker record, else 0."""
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
    found = reconcile(
        search(workdir.audit_dir()),
        {
            name.removeprefix("adapter:"): search(d)
            for name, (d, _) in trails.items()
            if name != "broker"
        },
        since=since,
    )
    if output == "json":
        print(json.dumps(found.as_dict(), ensure_ascii=False))
    else:
        print(render_reconciliation(found))
    return 1 if found.unmatched else 0


def policy(args: argparse.Namespace, workdir: Workdir) -> int:
    handlers = {"check": policy_check, "explain": policy_explain, "diff": policy_diff}
    return handlers[args.policy_command](args, workdir)


def policy_explain(args: argparse.Namespace, workdir: Workdir) -> int:
    from broker.policy.review import explain_role
    from broker.policy.store import PolicySet

    federation = load_federation(args.federation)
    policy = PolicySet.load(args.policies, federation)
    if args.role not in policy.roles:
        raise ConfigError(f"no role {args.role!r}; the roles are {', '.join(sorted(policy.roles))}")
    print("\n".join(explain_role(policy, args.role, federation).lines()))
    return 0


def policy_diff(args: argparse.Namespace, workdir: Workdir) -> int:
    import tempfile

    from app.policyref import policies_at
    from broker.policy.review import diff_policies
    from broker.policy.store import PolicySet

    federation = load_federation(args.federation)
    new = PolicySet.load(args.policies, federation)
    with tempfile.TemporaryDirectory(prefix="accord-policy-") as scratch:
        old = PolicySet.load(policies_at(args.against, args.policies, Path(scratch)), federation)
    changes = diff_policies(old, new, federation)
    print("\n".join(changes) if changes else f"no change against {args.against}")
    return 0


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
    started = time.monotonic()
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
    rows = sum(n for tables in counts.values() for n in tables.values())
    print(
        f"total: {rows} rows in {len(counts)} sources, written in "
        f"{time.monotonic() - started:.1f} s"
    )
    return EXIT_OK
