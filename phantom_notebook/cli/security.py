"""Operator commands for code, access and keys: deploy, acl, keys, audit."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from .. import core
from .common import add_connection, command, connect, print_help


def register(sub: Any) -> None:
    """Add ``deploy``, ``acl``, ``keys`` and ``audit``."""
    deploy = command(sub, "deploy", "Load phantom_notebook's server-side functions into "
                                    "Redis (every master of a Cluster): the operator's step, "
                                    "also run by `acl apply`.")
    deploy.set_defaults(func=_deploy)

    acl = sub.add_parser("acl", help="Redis ACL users for the configured roles.",
                         description="Render or install ACL SETUSER rules so Redis itself "
                                     "enforces each role's grants.")
    acl_sub = acl.add_subparsers(dest="acl_command", metavar="ACTION")
    for name, text in [("render", "Print the ACL SETUSER commands (passwords as hashes), "
                                  "each role's commands, key patterns and the function that "
                                  "needs them."),
                       ("apply", "Load the functions and install the users on the server "
                                 "(needs the operator's login).")]:
        p = add_connection(acl_sub.add_parser(name, help=text, description=text))
        p.add_argument("--user", action="append", default=[], metavar="NAME:ROLE",
                       help="a user and its role (repeatable); its password comes from "
                            "$PHANTOM_ACL_PASSWORD_<NAME>")
        if name == "apply":
            p.add_argument("--save", action="store_true", help="ACL SAVE to the aclfile")
        p.set_defaults(func=_acl, acl_apply=name == "apply")
    acl.set_defaults(func=lambda args: print_help(acl))

    keys = sub.add_parser("keys", help="Generate encryption keys and rotate them.",
                          description="Generate encryption keys and rotate them.")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION")
    gen = keys_sub.add_parser("generate", help="Print a new key line '<id> <base64>' or add "
                                               "it to a key file (0600).")
    gen.add_argument("--id", default=None, help="key id (default: unique to the microsecond)")
    gen.add_argument("--key-file", default=None, help="append to this key file instead")
    gen.set_defaults(func=_keys_generate)
    rot = add_connection(keys_sub.add_parser(
        "rotate", help="Activate a new key in the key file and re-encrypt everything stored "
                       "(ready, delayed, dead-lettered) under it; resumable, safe to run "
                       "twice at once. Exit 1 when anything stored is left unreadable."))
    rot.add_argument("--key-file", required=True, help="the key file (lines '<id> <base64>')")
    rot.add_argument("--activate", default=None,
                     help="make this existing key id active (default: generate a new key)")
    rot.add_argument("--reseal-only", action="store_true",
                     help="only re-encrypt stored messages under the current active key")
    rot.add_argument("--quiet", action="store_true", help="no progress bar (cron)")
    rot.set_defaults(func=_keys_rotate)
    keys.set_defaults(func=lambda args: print_help(keys))

    audit = sub.add_parser("audit", help="Verify, anchor, checkpoint and trim the audit trail.",
                           description="The tamper-evident audit trail. The audit key comes "
                                       "from [security] audit_key or $PHANTOM_AUDIT_KEY.")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    verify = add_connection(audit_sub.add_parser(
        "verify", help="Check every entry's MAC and chain links. Exit 0 only when the trail "
                       "verifies against an anchor; 1 unanchored or empty; 2 broken."))
    verify.add_argument("--anchor", default=None, help="an anchor file (from `audit anchor`)")
    verify.set_defaults(func=_audit_verify)
    anchor = add_connection(audit_sub.add_parser(
        "anchor", help="Verify, then write the head of every audit stream to a file (keep "
                       "it outside Redis: it detects deletion of the newest entries)."))
    anchor.add_argument("--output", default=None, help="file to write (default: print)")
    anchor.set_defaults(func=_audit_anchor)
    ckpt = add_connection(audit_sub.add_parser(
        "checkpoint", help="Sign every writer's head in every audit stream."))
    ckpt.set_defaults(func=_audit_checkpoint)
    audit.set_defaults(func=lambda args: print_help(audit))


def _deploy(args: argparse.Namespace) -> int:
    from ..core.backend.deploy import deploy
    from ..core.backend.library import LIBRARY

    settings = core.Settings.load(args.settings)
    from ..core.backend.connection import open_client, resolve_url

    target = resolve_url(args.redis_url) if args.redis_url else settings.redis.url
    import dataclasses

    client = open_client(dataclasses.replace(settings.redis, url=target))
    build = deploy(client)
    print(f"loaded {LIBRARY} build {build}")
    return 0


def _acl(args: argparse.Namespace) -> int:
    from ..core.audit.inline import AuditItem, record_safely
    from ..core.backend.deploy import deploy
    from ..core.backend.durability import server_version
    from ..core.security.access import apply_acl, describe_acl, format_setuser, render_all

    mq = connect(args)
    users: dict[str, tuple[str, str | None]] = {}
    table = dict(mq.settings.acl.get("users", {}))
    for spec in args.user:
        name, _, role = spec.partition(":")
        table[name] = {"role": role}
    if not table:
        raise core.ValidationError("no users: give --user NAME:ROLE or [acl.users.NAME] role")
    for name, entry in table.items():
        env = entry.get("password_env") or f"PHANTOM_ACL_PASSWORD_{name.upper()}"
        password = os.environ.get(env)
        if password is None:
            raise core.ValidationError(f"no password for user {name!r}: set ${env}")
        users[name] = (str(entry.get("role", "")), password)
    version = (7, 0) if mq.embedded else server_version(mq.client)
    queues = mq.queues()
    rules = render_all(mq.access, users, prefix=mq.keys.prefix, queues=queues,
                       redis_version=version)
    if not args.acl_apply:
        for name, user_rules in rules.items():
            print(describe_acl(mq.access, users[name][0], name, prefix=mq.keys.prefix,
                               queues=queues))
            print(format_setuser(name, user_rules))
        return 0
    build = deploy(mq.client)
    print(f"loaded the functions (build {build})")
    applied = apply_acl(mq.client, rules, save=args.save)
    for user in applied.users:
        record_safely(mq.audit, AuditItem("acl_change", f"user:{user}",
                                          detail={"role": users[user][0]}))
    print(f"installed ACL users: {', '.join(applied.users)}")
    if applied.save_error:
        print(f"warning: ACL SAVE failed ({applied.save_error}); the users are live until "
              "the server restarts", file=sys.stderr)
    return 0


def _keys_generate(args: argparse.Namespace) -> int:
    from ..core.admin.rotation import KeyFileLock, new_key_id
    from ..core.security.keyring import KeyRing, generate_key

    key_id = args.id or new_key_id()
    if not args.key_file:
        print(f"{key_id} {generate_key()}")
        return 0
    path = Path(args.key_file)
    with KeyFileLock(path):
        if path.exists():
            current = KeyRing.from_file(path)
            ring = current.rotate(key_id)
            ring = KeyRing.from_base64([(k, ring.key(k).to_base64()) for k in ring.ids],
                                       active=current.active_id)
        else:
            ring = KeyRing.from_base64([(key_id, generate_key())], active=key_id)
        ring.write_key_file(path)
    print(f"added key {key_id!r} to {path} (active: {ring.active_id!r})")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    import dataclasses

    from rich.progress import Progress

    from ..core.admin.rotation import KeyFileLock, activate_new_key, pending_count, reseal_all
    from ..core.audit.inline import AuditItem, record_safely

    with KeyFileLock(args.key_file):  # held for the whole rotation: activation and reseal
        if not args.reseal_only:
            ring = activate_new_key(args.key_file, args.activate)
            print(f"active key is now {ring.active_id!r} (older keys still decrypt)")
        settings = core.Settings.load(args.settings)
        security = dataclasses.replace(settings.security, key_file=args.key_file, keys=None)
        settings = dataclasses.replace(settings, security=security)
        options = {"key_prefix": args.key_prefix} if args.key_prefix else {}
        mq = core.connect(args.redis_url, settings=settings, **options)
        total = pending_count(mq)
        with Progress(disable=args.quiet) as bar:
            task = bar.add_task("re-encrypting", total=total)
            report = reseal_all(mq, progress=lambda n: bar.advance(task, n))
        left = pending_count(mq) - report.skipped_in_flight
    record_safely(mq.audit, AuditItem("key_rotation", "keyring", detail={
        "active": _active_id(mq), "resealed": report.resealed,
        "in_flight": report.skipped_in_flight, "unreadable": report.unreadable}))
    print(f"re-encrypted {report.resealed:,} of {total:,} stored messages; "
          f"{report.skipped_in_flight:,} in flight left to their workers; "
          f"{report.unreadable:,} unreadable")
    if report.unreadable or left > report.unreadable:
        print(f"error: {report.unreadable:,} stored message(s) cannot be decrypted with this "
              f"key file, {max(left - report.unreadable, 0):,} not re-encrypted", file=sys.stderr)
        return 1
    return 0


def _active_id(mq: core.MessageQueue) -> str:
    ring: Any = getattr(mq.codec, "keyring", None)
    return str(ring.active_id) if ring is not None else ""


def _audit_log(args: argparse.Namespace) -> Any:
    mq = connect(args)
    if mq.audit is None:
        raise core.ConfigError("security.audit_key", "no audit key is configured",
                               "[security] audit_key or $PHANTOM_AUDIT_KEY")
    return mq


def _audit_verify(args: argparse.Namespace) -> int:
    from ..core.audit.verify import verify_audit

    mq = _audit_log(args)
    anchor = None
    if args.anchor:
        try:
            data = orjson.loads(Path(args.anchor).read_bytes())
            anchor = {k: (v[0], v[1]) for k, v in data["heads"].items()}
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, IndexError) as exc:
            raise core.ValidationError(f"{args.anchor} is not an anchor file: {exc}") from None
    result = verify_audit(mq, mq.audit.macer, anchor)
    print(result)
    return {"ok": 0, "unanchored": 1, "empty": 1}.get(result.status, 2)


def _audit_anchor(args: argparse.Namespace) -> int:
    from ..core.audit.verify import verify_audit

    mq = _audit_log(args)
    result = verify_audit(mq, mq.audit.macer)
    if result.status == "broken":
        print(result, file=sys.stderr)
        return 2
    text = orjson.dumps({"prefix": mq.keys.prefix, "taken_at_ms": int(time.time() * 1000),
                         "entries": result.checked,
                         "heads": {k: list(v) for k, v in result.heads.items()}},
                        option=orjson.OPT_INDENT_2).decode()
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"anchored {len(result.heads)} audit stream(s), {result.checked} entries, "
              f"in {args.output}")
    else:
        print(text)
    return 0


def _audit_checkpoint(args: argparse.Namespace) -> int:
    from ..core.audit.maintain import checkpoint_all

    mq = _audit_log(args)
    done = checkpoint_all(mq.audit)
    print(f"checkpointed {sum(1 for v in done.values() if v)} audit stream(s)")
    return 0
