"""The commands that help write recipes: init, import, schema, completion."""

from __future__ import annotations

import argparse
import os
import stat
import sys

from imgforge.commands.common import Output
from imgforge.errors import UsageError


def cmd_init(args: argparse.Namespace, out: Output) -> int:
    from imgforge.authoring.scaffold import init_recipe

    path = init_recipe(args.name, args.base, args.dir)
    out.say(f"wrote {path}; build it with: imgforge build {path}")
    return 0


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    from imgforge.authoring.importing import import_to_file

    path = import_to_file(args.dockerfile, args.name, args.output)
    out.say(f"wrote {path}; build it with: imgforge build {path}")
    return 0


def cmd_schema(args: argparse.Namespace, out: Output) -> int:
    from imgforge import atomic
    from imgforge.recipes.schema import recipe_json_schema_text, reference_sections
    from imgforge.render import make_environment

    if args.schema_format == "markdown":
        template = make_environment().get_template("reference.md.j2")
        text = template.render(sections=reference_sections())
    else:
        text = recipe_json_schema_text()
    if args.output is None or str(args.output) == "-":
        sys.stdout.write(text)
        return 0
    # Replaced by a rename: only a regular file (or nothing) may be there, never a
    # device, FIFO, symlink or directory that the rename would swap out.
    if os.path.lexists(args.output) and not stat.S_ISREG(os.lstat(args.output).st_mode):
        raise UsageError(f"--out: {str(args.output)!r} exists and is not a regular file")
    atomic.write_text(args.output, text)
    out.say(f"wrote {args.output}")
    return 0


def cmd_completion(args: argparse.Namespace, out: Output) -> int:
    from imgforge.commands.parser import make_parser
    from imgforge.render import make_environment

    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    per_command, choices, nested = [], {}, []
    for name, command in sorted(sub.choices.items()):
        parsers = [command, *_actions_of(command).values()]
        actions = [a for parser in parsers for a in parser._actions]
        per_command.append((name, sorted({o for a in actions for o in a.option_strings})))
        if _actions_of(command):
            nested.append((name, sorted(_actions_of(command))))
        for action in actions:
            if action.choices and action.option_strings:
                for option in action.option_strings:
                    choices[f"{name}:{option}"] = sorted(map(str, action.choices))
    template = make_environment().get_template(f"completion.{args.shell}.j2")
    sys.stdout.write(
        template.render(
            commands=sorted(sub.choices),
            per_command=per_command,
            choices=sorted(choices.items()),
            nested=nested,
        )
    )
    return 0


def _actions_of(command: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A command's own subcommands (``imgforge cache ls``), by name; none for most."""
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}
