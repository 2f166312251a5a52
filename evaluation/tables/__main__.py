"""`python -m evaluation.tables table=<name> results=<dir> [speed=<dir>] [out=<dir>] [framework=toy]
[action=table|plan|list]`.

action=table (default) writes `<out>/<name>.md` and `<name>.csv` (default out: results/tables) and prints
the markdown; action=plan prints the bash commands that produce the table's missing runs (what the
`scripts/table_*.sh` scripts execute); action=list prints the known tables. `framework=` puts every row on
one host (e.g. a dry run on `toy`); `data=` and `ngpu=` are the strings the commands use (default "$DATA",
"$NGPU", expanded by the shell that runs them).
"""

from __future__ import annotations

import sys
from pathlib import Path

from evaluation.cli import key_values
from evaluation.tables.spec import list_tables, load_spec

KEYS = {"table", "results", "speed", "out", "framework", "action", "data", "ngpu", "parity"}
ACTIONS = ("table", "plan", "list")


def parse(argv: list[str]) -> dict[str, str]:
    args = key_values(argv, KEYS, {"results": "results/eval", "speed": "results/speed", "out": "results/tables",
                                   "action": "table", "data": "$DATA", "ngpu": "$NGPU", "parity": "1"})
    if args["action"] not in ACTIONS:
        raise ValueError(f"action={args['action']}: must be one of {ACTIONS}")
    if args["action"] != "list" and not args.get("table"):
        raise ValueError(f"table=<name> is required; known tables: {', '.join(list_tables())}")
    return args


def run(argv: list[str]) -> str:
    """Do what argv asks; returns the text printed (tests call this directly)."""
    from evaluation.tables.collect import fill
    from evaluation.tables.plan import shell_plan
    from evaluation.tables.render import csv_text, markdown

    args = parse(argv)
    if args["action"] == "list":
        return "\n".join(list_tables()) + "\n"
    spec = load_spec(args["table"])
    if args["parity"] not in ("0", "1"):
        raise ValueError(f"parity={args['parity']}: must be 1 (released behaviour, the default) or 0")
    if args["parity"] == "1":
        spec = spec.with_parity()
    if args.get("framework"):
        spec = spec.with_framework(args["framework"])
    if args["action"] == "plan":
        return shell_plan(spec, args["results"], args["speed"], args["data"], args["ngpu"])
    filled = fill(spec, args["results"], args["speed"], args["data"], args["ngpu"])
    text = markdown(filled, args["results"], args["speed"])
    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{spec.name}.md").write_text(text)
    (out / f"{spec.name}.csv").write_text(csv_text(filled))
    return text + f"\nwrote {out / spec.name}.md and {out / spec.name}.csv\n"


def main() -> None:
    from evaluation.cli import user_errors

    with user_errors():  # one line naming the bad argument, exit code 2 (traceback with HYDRA_FULL_ERROR=1)
        sys.stdout.write(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
