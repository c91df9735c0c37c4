"""The ``accord`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accord import corelog, logs
from accord.errors import AccordError
from accord.workdir import DEFAULT_FEDERATION, DEFAULT_POLICIES, Workdir
from app.advice import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROGRAM_ENV,
    in_our_words,
    moment,
    positive_seconds,
    program,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


def _common_options(*, defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. Only the
    top level's copy has defaults: a subcommand's default would otherwise
    silently replace a value given before the subcommand's name (with
    ``accord --workdir X certs revoke ...`` acting on ./.accord)."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--workdir",
        type=Path,
        default=default(Path(".accord")),
        help="certificates, data and run files (default: ./.accord)",
    )
    common.add_argument(
        "--federation",
        type=Path,
        default=default(DEFAULT_FEDERATION),
        help="federation config: sources, endpoints, mappings",
    )
    common.add_argument(
        "--policies",
        type=Path,
        default=default(DEFAULT_POLICIES),
        help="partner registry, roles and purposes (default: ./policies)",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="log at DEBUG level"
    )
    common.add_argument(
        "--log-format",
        choices=["json", "text"],
        default=default(None),
        help="json: one object per line with the query id (default for "
        "`serve`); text: for people (default otherwise)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options(defaults=False)

    parser = argparse.ArgumentParser(
        prog="accord",
        description=__doc__ or "",
        parents=[_common_options(defaults=True)],
        epilog="exit status: 0 done; 1 the broker refused or failed the call; 2 a usage or "
        "configuration mistake; 3 a partial answer (query --allow-partial); 130 Ctrl-C; "
        "141 the output's reader went away (docs/OPERATIONS.md)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="certs, data, six adapters and a broker on loopback; sample queries",
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="stay up until Ctrl-C instead of exiting after the samples",
    )
    demo.add_argument(
        "--scale",
        type=float,
        default=0.02,
        help="synthetic data scale (1 = full size; default 0.02)",
    )
    demo.add_argument("--seed", type=int, default=7)
    _add_data_arguments(demo)

    serve = sub.add_parser("serve", parents=[common], help="run the broker or one adapter")
    serve.add_argument("role", choices=["broker", "adapter"])
    serve.add_argument("--source", help="source code for an adapter, e.g. BC")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0, help="0 picks a free port")
    serve.add_argument("--port-file", type=Path, help="write HOST:PORT here once serving")
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="port of /metrics (0 picks a free one; the address is written "
        "to WORKDIR/run/broker-metrics.addr or adapter-CODE-metrics.addr)",
    )
    serve.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="SOURCE=HOST:PORT[,HOST:PORT]",
        help="broker: where a source's adapter (and its replicas) listen; repeatable",
    )
    serve.add_argument(
        "--flight-port",
        type=int,
        default=0,
        help="broker: port of the Flight SQL endpoint (0 picks a free one; the address is "
        "written to WORKDIR/run/broker-flight.addr; docs/FLIGHT_SQL.md)",
    )

    status = sub.add_parser(
        "status",
        parents=[common],
        help="each process of the running federation: address, restarts, health, readiness",
    )
    status.add_argument("--json", action="store_true", help="as JSON, for scripts")

    for name, helptext in (
        ("query", "run one SQL query"),
        ("explain", "show the plan and the SQL sent to each source"),
    ):
        cmd = sub.add_parser(name, parents=[common], help=helptext)
        cmd.add_argument("sql")
        cmd.add_argument(
            "--as",
            dest="partner",
            required=True,
            help="act as this partner (its certificate from the work dir)",
        )
        cmd.add_argument("--purpose", default="", help="declared purpose of use")
        cmd.add_argument("--case-ref", default="", help="case reference, where required")
        cmd.add_argument("--end-user", default="", help="the person at the partner asking")
        cmd.add_argument("--broker", help="broker address (default: from the work dir)")
        cmd.add_argument(
            "--timeout", type=positive_seconds, default=60.0, help="seconds (default 60)"
        )
        if name == "query":
            cmd.add_argument("--format", choices=["table", "json", "csv"], default="table")
            cmd.add_argument(
                "--allow-partial",
                action="store_true",
                help="answer from the sources that answered (exit status 3 when some did not)",
            )

    _add_history_command(sub, common)
    _add_console_command(sub, common)
    _add_admin_commands(sub, common)
    _add_bench_command(sub, common)
    return parser


def _add_bench_command(sub: Any, common: argparse.ArgumentParser) -> None:
    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="workloads against a local federation on generated data, with baselines (issue 14)",
    )
    bench.add_argument("--quick", action="store_true", help="tiny scale, few queries (CI)")
    bench.add_argument("--scale", type=float, help="data scale (default 0.05; 0.002 with --quick)")
    bench.add_argument("--queries", type=int, help="queries per workload and concurrency")
    bench.add_argument("--out", type=Path, help="write the results here as JSON")
    bench.add_argument(
        "--workload", default="W1,W2,W3,W4,W5", help="comma-separated (default W1,W2,W3,W4,W5)"
    )
    bench.add_argument(
        "--tpch-scale", type=float, help="W5's TPC-H scale (default 0.05; 0.002 with --quick)"
    )
    bench.add_argument(
        "--tpch-queries", help="W5's TPC-H query numbers, comma-separated (default all 22)"
    )
    bench.add_argument("--tpch-repeats", type=int, help="runs of each W5 query (default 3)")
    bench.add_argument(
        "--peer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="measure the peer, DuckDB's scanners (default: yes, no with --quick)",
    )


def _add_console_command(sub: Any, common: argparse.ArgumentParser) -> None:
    console = sub.add_parser(
        "console",
        parents=[common],
        help="the web console of one partner for its people (docs/CONSOLE.md)",
    )
    console.add_argument("--as", dest="partner", required=True, help="serve as this partner")
    console.add_argument(
        "--users",
        type=Path,
        help="local users file with argon2 hashes; or sign in with OpenID Connect "
        "(ACCORD_CONSOLE_OIDC_* settings)",
    )
    console.add_argument("--host", default="127.0.0.1")
    console.add_argument("--port", type=int, default=0, help="0 picks a free port")
    console.add_argument("--broker", default="", help="broker address (default: from the work dir)")


def _add_history_command(sub: Any, common: argparse.ArgumentParser) -> None:
    history = sub.add_parser(
        "history",
        parents=[common],
        help="one person's history across every system, by FPS number or by name",
    )
    history.add_argument("--fps", help="FPS number, e.g. 1234567K")
    history.add_argument("--surname")
    history.add_argument("--given-names")
    history.add_argument("--birth-date", help="YYYY-MM-DD")
    history.add_argument("--birth-place", help="optional, with a name search")
    history.add_argument("--as", dest="partner", required=True, help="act as this partner")
    history.add_argument("--purpose", default="", help="declared purpose of use")
    history.add_argument("--case-ref", default="", help="case reference, where required")
    history.add_argument("--end-user", default="", help="the person at the partner asking")
    history.add_argument("--broker", help="broker address (default: from the work dir)")
    history.add_argument("--timeout", type=float, default=30.0, help="seconds")
    history.add_argument(
        "--format",
        choices=["table", "json", "brief", "html", "pdf"],
        default="table",
        help="table: every file and fact; json: the HistoryResponse; brief: the bail "
        "brief as tables; html/pdf: the printable bail brief (pdf prints with chromium)",
    )
    history.add_argument("--out", help="write the html or pdf here (pdf requires it)")


def _add_admin_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """catalog, certs, audit, policy and datagen."""
    catalog = sub.add_parser("catalog", parents=[common], help="what a partner may query")
    catalog.add_argument("--as", dest="partner", required=True)
    catalog.add_argument("--broker")

    certs = sub.add_parser("certs", parents=[common], help="federation certificates")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True)
    init = certs_sub.add_parser(
        "init", parents=[common], help="create the CA and every hop's certificate"
    )
    init.add_argument("--dir", type=Path, help="output directory (default: WORKDIR/certs)")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    _add_lifecycle_commands(certs_sub, common)

    audit = sub.add_parser(
        "audit", parents=[common], help="the audit trails of the broker and of each adapter"
    )
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    trail = argparse.ArgumentParser(add_help=False)
    trail.add_argument(
        "--trail",
        default="broker",
        metavar="broker|adapter:CODE",
        help="whose trail: the broker's (default, WORKDIR/audit) or one adapter's "
        "(WORKDIR/audit/adapter-CODE, its key pinned in WORKDIR/audit-key-adapter-CODE.pin)",
    )
    verify = audit_sub.add_parser(
        "verify", parents=[common, trail], help="check the hash chain and the signed checkpoints"
    )
    verify.add_argument("path", nargs="?", type=Path, help="audit dir (default: the trail's)")
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="FILE",
        help="the trail's audit public key (hex or PEM), kept apart from the trail "
        "(default: the key pinned in WORKDIR/audit-key.pin, or the adapter's pin)",
    )
    search = audit_sub.add_parser("search", parents=[common, trail], help="records for a review")
    search.add_argument("path", nargs="?", type=Path, help="audit dir (default: the trail's)")
    for name in ("since", "until"):
        search.add_argument(
            f"--{name}", type=moment, help="ISO 8601 date or time (naive is UTC), e.g. 2026-11-01"
        )
    for name in ("partner", "purpose", "case-ref", "fps"):
        search.add_argument(f"--{name}")
    search.add_argument("--query-id", help="the records of one query (errors end with its id)")
    reconcile = audit_sub.add_parser(
        "reconcile",
        parents=[common],
        help="match every adapter's scans against the broker's queries; exit 1 on a scan "
        "no broker record accounts for, 2 if a trail does not verify",
    )
    reconcile.add_argument(
        "--since", type=moment, help="report from this time on (ISO 8601; naive is UTC)"
    )
    reconcile.add_argument("--format", choices=["text", "json"], default="text")

    policy = sub.add_parser("policy", parents=[common], help="need-to-know policy files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    policy_sub.add_parser(
        "check", parents=[common], help="lint every policy file: tables, columns, masks, attributes"
    )
    explain = policy_sub.add_parser(
        "explain",
        parents=[common],
        help="what a role sees, table by table, in words to review against the law",
    )
    explain.add_argument("role", help="the role (policies/roles/ROLE.yaml)")
    diff = policy_sub.add_parser(
        "diff",
        parents=[common],
        help="what a partner would see differently: the policy against another version",
    )
    diff.add_argument(
        "--against",
        default="HEAD",
        metavar="DIR|GIT-REF",
        help="the other policy: a policies directory, or a git ref of this repository "
        "(default HEAD: the uncommitted changes)",
    )

    datagen = sub.add_parser(
        "datagen", parents=[common], help="synthetic data in every source's own schema"
    )
    datagen.add_argument("--scale", type=float, default=0.02)
    datagen.add_argument("--seed", type=int, default=7)
    datagen.add_argument(
        "--target",
        metavar="URL",
        help="load into this postgresql:// or mysql:// database instead: the "
        "sources whose backend is of that kind, or those named by --source",
    )
    datagen.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="CODE",
        help="with --target: load this source (repeatable)",
    )
    _add_data_arguments(datagen)


def _add_lifecycle_commands(certs_sub: Any, common: argparse.ArgumentParser) -> None:
    """certs issue, renew, revoke, crl, list and csr."""
    from certs import CRL_DAYS, LEAF_DAYS, LEAF_KINDS, REVOCATION_REASONS

    pki = argparse.ArgumentParser(add_help=False)
    pki.add_argument("--dir", type=Path, help="the PKI directory (default: WORKDIR/certs)")

    def leaf_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--kind", required=True, choices=LEAF_KINDS)
        parser.add_argument(
            "--name",
            help="partner: its name (the CN); adapter: the source code, e.g. CA-CSC; "
            "not needed for the broker's and the operator's",
        )
        parser.add_argument(
            "--csr",
            type=Path,
            metavar="FILE",
            help="sign this CSR's public key (the holder keeps its private key; "
            "only the certificate is written)",
        )
        parser.add_argument(
            "--days", type=int, default=LEAF_DAYS, help=f"validity (default {LEAF_DAYS})"
        )

    issue = certs_sub.add_parser(
        "issue", parents=[common, pki], help="issue one certificate (or sign a CSR)"
    )
    leaf_arguments(issue)
    issue.add_argument(
        "--org", help="partner: its organization (default: that of its last certificate)"
    )
    renew = certs_sub.add_parser(
        "renew",
        parents=[common, pki],
        help="new key and certificate for the same subject; the old one is superseded",
    )
    leaf_arguments(renew)

    revoke = certs_sub.add_parser(
        "revoke", parents=[common, pki], help="revoke certificates and publish the CRL"
    )
    revoke.add_argument(
        "target",
        metavar="SERIAL_OR_NAME",
        help="a serial (hex as `certs list` shows it, 0x-hex or decimal), or a CN: "
        "every still usable certificate of that subject",
    )
    revoke.add_argument("--reason", choices=REVOCATION_REASONS, default="unspecified")
    revoke.add_argument("--kind", choices=LEAF_KINDS, help="with a CN: only this kind")
    revoke.add_argument(
        "--crl-days",
        type=int,
        default=CRL_DAYS,
        help=f"days to the CRL's next update (default {CRL_DAYS})",
    )

    crl = certs_sub.add_parser(
        "crl", parents=[common, pki], help="publish the revocation list again (at least weekly)"
    )
    crl.add_argument(
        "--days",
        type=int,
        default=CRL_DAYS,
        help=f"days to its next update, after which partners are refused (default {CRL_DAYS})",
    )

    certs_sub.add_parser(
        "list", parents=[common, pki], help="every certificate the CA issued, and its status"
    )

    csr = certs_sub.add_parser(
        "csr", parents=[common], help="partner side: a private key and a CSR to send the CA"
    )
    csr.add_argument("--name", required=True, help="the partner's name (its certificate's CN)")
    csr.add_argument("--org", required=True, help="the partner's organization")
    csr.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="writes NAME.key (0600), NAME.csr"
    )


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data and --shards: a federation's own data instead of the synthetic one."""
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="load DIR/<table>.parquet (e.g. tpchgen-cli parquet's output) into every "
        "source instead of generating the synthetic justice data",
    )
    parser.add_argument(
        "--shards",
        type=Path,
        metavar="FILE",
        help="with --data: which rows of a table held by several sources each holds "
        "(table: {SOURCE: predicate}; see app/dataload.py)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    serving = args.command == "serve"
    service = (
        "cli"
        if not serving
        else ("broker" if args.role == "broker" else f"adapter-{(args.source or '').upper()}")
    )
    if serving:
        # Before logging starts: gRPC core's lines (handshakes the broker
        # refused among them) reach the server through a pipe and leave as
        # JSON log lines, not as plain text in its log.
        corelog.exec_capturing(
            sys.argv[1:] if argv is None else list(argv),
            # the image exec-ed names the command as it was started
            {PROGRAM_ENV: os.environ.get(PROGRAM_ENV) or program()},
        )
        corelog.adopt()
    logs.configure(
        service,
        args.log_format or ("json" if serving else "text"),
        logging.DEBUG if args.verbose else logging.INFO,
    )
    workdir = Workdir(args.workdir)
    try:
        code = _dispatch(args, workdir)
        sys.stdout.flush()  # here, where a reader gone away is caught
        return code
    except AccordError as exc:
        print(in_our_words(f"accord: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`accord audit search | head`): stop quietly,
        # and keep the interpreter from complaining when it flushes stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _dispatch(args: argparse.Namespace, workdir: Workdir) -> int:
    from app import commands

    if args.command == "demo":
        from app.demo import run_demo

        return run_demo(
            workdir,
            args.federation,
            args.policies,
            scale=args.scale,
            seed=args.seed,
            serve=args.serve,
            data=args.data,
            shards=args.shards,
        )
    if args.command == "bench":
        from bench.harness import main as run_bench

        return run_bench(
            quick=args.quick,
            scale=args.scale,
            out=args.out,
            workloads=args.workload,
            queries=args.queries,
            tpch_scale=args.tpch_scale,
            tpch_queries=args.tpch_queries,
            tpch_repeats=args.tpch_repeats,
            peer=args.peer,
        )
    if args.command == "console":
        from app.console.serve import run_console

        return run_console(workdir, args.partner, args.users, args.host, args.port, args.broker)
    if args.command == "status":
        from app.status import run_status

        return run_status(workdir, args.federation, as_json=args.json)
    handlers = {
        "serve": commands.serve,
        "query": commands.query,
        "explain": commands.explain,
        "history": commands.history,
        "catalog": commands.catalog,
        "certs": commands.certs,
        "datagen": commands.datagen,
        "policy": commands.policy,
        "audit": commands.audit,
    }
    return handlers[args.command](args, workdir)


if __name__ == "__main__":
    sys.exit(main())
