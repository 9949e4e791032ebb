"""User management and a school's archive from the command line (never
through the public API).

    python -m ops.cli [--stage dev] user add EMAIL --role teacher
    python -m ops.cli user set-password EMAIL
    python -m ops.cli user list
    python -m ops.cli user remove EMAIL
    python -m ops.cli archive export FILE.zip     (see ops.archive)
    python -m ops.cli archive import FILE.zip

Passwords are asked for without echo (twice), read from standard input with
``--password-stdin``, or generated with ``--generate`` and shown once. They
are never taken as an argument, where shell history and ``ps`` would see them.
"""
import argparse
import datetime
import getpass
import sys

from chalicelib import passwords
from chalicelib.clients import ClientFactory
from chalicelib.settings import load_settings
from ops.stage_config import apply_stage_environment
from chalicelib.users import ROLES, UserError, UserStore


def _read_password(args, stdin, out):
    if args.generate:
        password = passwords.generate_password()
        print(f"generated password (shown once): {password}", file=out)
        return password
    if args.password_stdin:
        return stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat it: "):
        raise UserError("the two passwords differ")
    return first


def _parser():
    parser = argparse.ArgumentParser(prog="python -m ops.cli",
                                     description="Manage Rollcall users.")
    parser.add_argument("--stage", default="dev", help="stage in .chalice/config.json")
    area = parser.add_subparsers(dest="area", required=True)
    user = area.add_parser("user", help="manage users").add_subparsers(
        dest="command", required=True)

    def with_password(sub):
        group = sub.add_mutually_exclusive_group()
        group.add_argument("--password-stdin", action="store_true",
                           help="read the password from the first line of stdin")
        group.add_argument("--generate", action="store_true",
                           help="generate a password and print it once")
        return sub

    add = with_password(user.add_parser("add", help="add a user"))
    add.add_argument("email")
    add.add_argument("--role", choices=ROLES, default="teacher")
    change = with_password(user.add_parser("set-password",
                                           help="set a new password (ends every sign-in)"))
    change.add_argument("email")
    user.add_parser("list", help="list users")
    remove = user.add_parser("remove", help="remove a user")
    remove.add_argument("email")
    from ops import archive
    archive.add_arguments(area.add_parser("archive", help="export or import a school's "
                                          "archive (people, classes, registers)"))
    return parser


def run(argv, users=None, stdin=sys.stdin, out=sys.stdout, err=sys.stderr):
    """Run the CLI; ``users`` lets tests pass a store. Returns an exit code."""
    args = _parser().parse_args(argv)
    if args.area == "archive":
        from ops import archive
        return archive.run(args, out=out, err=err)
    if users is None:
        apply_stage_environment(args.stage)
        settings = load_settings()
        users = UserStore(ClientFactory(region=settings.region).table(settings.users_table))
    try:
        if args.command == "add":
            password = _read_password(args, stdin, out)
            created = users.add(args.email, password, args.role)
            print(f"added {created['email']} ({created['role']})", file=out)
        elif args.command == "set-password":
            users.set_password(args.email, _read_password(args, stdin, out))
            print(f"password changed for {args.email.strip().lower()}; "
                  "existing sign-ins have ended", file=out)
        elif args.command == "list":
            for user in users.list():
                locked = user.get("locked_until")
                note = ""
                if locked and locked > datetime.datetime.now().timestamp():
                    note = "  locked until " + datetime.datetime.fromtimestamp(
                        locked, datetime.timezone.utc).isoformat(timespec="minutes")
                print(f"{user['email']}\t{user['role']}{note}", file=out)
        elif args.command == "remove":
            users.remove(args.email)
            print(f"removed {args.email.strip().lower()}", file=out)
    except UserError as error:
        print(f"error: {error}", file=err)
        return 1
    return 0


def main():
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
